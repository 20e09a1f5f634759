"""The shell examples of README.md and docs/ marked runnable (```` ```bash runnable ````) run as printed.

They run in order, in one bash with `set -euo pipefail`, in a fresh folder next to a server started as
README says (`releasehub serve --data-dir ./data`), with two substitutions only: the server's port for
8000, and this installation's bin folder first on PATH (where `releasehub` and `hf` live). The stored
login goes to a temporary file, never the user's home.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```bash runnable\n(.*?)^```", re.S | re.M)
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def runnable_blocks(document: Path) -> list[str]:
    return FENCE.findall(document.read_text())


def test_readme_has_runnable_examples() -> None:
    assert len(runnable_blocks(ROOT / "README.md")) >= 2


@pytest.mark.parametrize("document", [d for d in DOCUMENTS if runnable_blocks(d)], ids=lambda d: d.name)
def test_runnable_examples_run_as_printed(document: Path, tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "")
    try:
        port = server.url.rsplit(":", 1)[1]
        script = "\n".join(block.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for block in runnable_blocks(document))
        env = {key: value for key, value in os.environ.items()
               if key not in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_DISABLE_XET")}  # the README sets what it needs
        env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                    "RELEASEHUB_CONFIG": str(tmp_path / "login.json"), "HF_HOME": str(tmp_path / "hf-home"),
                    "COLUMNS": "120"})
        done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{document.name} examples failed:\n{done.stdout}\n{done.stderr}"
    finally:
        stop_server(server)
