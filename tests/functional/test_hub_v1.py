"""The 1.x series of huggingface_hub, in its own virtualenv, against the same server.

The main suite runs the newest client (2.x); users still on 1.x must work unchanged too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "hub_client_roundtrip.py"


@pytest.fixture(scope="session")
def hub_v1_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    venv = tmp_path_factory.mktemp("hub-v1") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "huggingface_hub>=1.0,<2"], capture_output=True, text=True
    )
    if install.returncode != 0:
        pytest.fail(f"could not install huggingface_hub 1.x from the package index:\n{install.stderr[-2000:]}")
    return python


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_hub_1x_round_trip(hub_v1_python: str, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name, token = server.user()
    repo_id = f"{name}/v1-{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env["HF_HOME"] = str(tmp_path / "hf-home")
    result = subprocess.run(
        [hub_v1_python, str(SCRIPT), server.url, token, repo_id, str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["version"].startswith("1.")
    assert seen["sha"] == seen["commit"]
    assert seen["card_license"] == "mit"
    assert seen["siblings"] == [".gitattributes", "README.md", "sub/notes.txt", "weights.safetensors"]
    assert seen["weights_ok"] is True
    assert seen["snapshot_files"] == ["README.md", "sub/notes.txt"]
    assert seen["branches"] == ["dev", "main"] and seen["tags"] == ["v1.0"]
    assert seen["whoami"] == name
