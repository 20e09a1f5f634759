"""The gateway in front of a real engine: vLLM's CPU build serving a tiny generated model.

Run with `make test-engine`, which builds (or reuses) the engine's environment first
(scripts/engine_env.py) and sets RELEASEHUB_ENGINE_TESTS=1; `make test` does not collect these tests.

One vLLM process serves the whole session (it takes one to two minutes to start): the tiny model of
`releasehub.demo.build_hosted_model` (random weights, a BPE tokenizer trained in-process, a chat
template), generated here, nothing downloaded. The same files are committed to each test's repo on
a live `releasehub serve` (SQLite) with the real `huggingface_hub` client, the repo is attached to
vLLM with `releasehub hosted attach`, and the calls go through the unchanged `openai` client.

While working on these tests, RELEASEHUB_TEST_VLLM_URL=http://127.0.0.1:PORT uses a vLLM already
started on the same files (`releasehub.demo.build_hosted_model`, served as "tiny") instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .hosting import Hosting

ENABLED = os.environ.get("RELEASEHUB_ENGINE_TESTS") == "1"
if not ENABLED:  # `make test` and a bare `pytest`: these need the engine environment and minutes
    collect_ignore_glob = ["test_*.py"]

_STARTED: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if "vllm" in _STARTED:
        terminalreporter.write_line(f"vLLM was ready {_STARTED['vllm']:.0f} s after its start")


@pytest.fixture(scope="session")
def backend() -> str:
    """vLLM's tests run on SQLite only (the gateway's database paths run on both in `make test`)."""
    return "sqlite"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from releasehub.demo import build_hosted_model

    directory = tmp_path_factory.mktemp("tiny-model")
    build_hosted_model(directory)
    return directory


@pytest.fixture(scope="session")
def vllm(model_dir: Path) -> Iterator[Any]:
    from releasehub.demo import BUILD_HINT, engine_env_dir, engine_python, start_vllm

    running = os.environ.get("RELEASEHUB_TEST_VLLM_URL")
    if running:  # a developer's vLLM, already serving build_hosted_model's files as "tiny" (saves a minute a run)
        from releasehub.demo import VllmEngine

        yield VllmEngine(None, running.rstrip("/"), "tiny", Path("/dev/null"))
        return
    if engine_python() is None:
        pytest.fail(f"no vLLM environment at {engine_env_dir()}: {BUILD_HINT}")
    # Its own folder (not pytest's basetemp, which keeps only the last few sessions): the log stays
    # where the failure message says.
    work = Path(tempfile.mkdtemp(prefix="releasehub-vllm-"))
    engine = start_vllm(model_dir, work, name="tiny")
    _STARTED["vllm"] = engine.started_in_s
    print(f"\nvLLM ready after {engine.started_in_s:.0f} s at {engine.url} (log: {engine.log_path})")
    yield engine
    engine.stop()
    shutil.rmtree(work, ignore_errors=True)  # kept when vLLM failed to start: its log is there


@pytest.fixture(scope="session")
def hosting(server: Any, vllm: Any, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Hosting:
    return Hosting(server, vllm, model_dir, tmp_path_factory.mktemp("policies"))
