# Two commands on a fresh machine:
#   make demo   start the server on the embedded default with a demo release in it
#   make test   run the whole test suite (SQLite and PostgreSQL)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install serve clean

$(BIN)/releasehub: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch (for transformers in the tests); pinned so pip does not pull CUDA wheels.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test]"
	touch $(BIN)/releasehub

install: $(BIN)/releasehub

demo: install
	$(BIN)/releasehub demo

serve: install
	$(BIN)/releasehub serve

test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) .releasehub .releasehub-demo
