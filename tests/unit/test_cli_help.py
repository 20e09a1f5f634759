"""The CLI's help, as a person reads it in a terminal (issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("command", [[], ["access", "review", "list"], ["push"], ["analyze"], ["demo"]])
def test_flags_show_no_value_type(command: list[str]) -> None:
    shown = subprocess.run([sys.executable, "-m", "releasehub", *command, "--help"], capture_output=True, text=True,
                           env={**os.environ, "COLUMNS": "100"}, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "--help" in shown.stdout
    assert "<bool>" not in shown.stdout  # `--json`, not `--json <bool>`: a flag takes no value
