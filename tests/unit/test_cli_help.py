"""The CLI's help, as a person reads it in a terminal (issue 12).

The top-level help runs as `python -m releasehub --help`, a process of its own; the others run the same
entry point, `releasehub.cli.main.main`, in this process with the same argv and COLUMNS (its output is
the same, byte for byte, without an interpreter start and the imports for each).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from releasehub.cli.main import main


def _help_in_process(command: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int | str | None, str, str]:
    monkeypatch.setattr(sys, "argv", ["releasehub", *command, "--help"])
    code: int | str | None = None
    with CliRunner().isolation(env={"COLUMNS": "100"}) as (out, err, _):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        sys.stdout.flush()
        sys.stderr.flush()
        return code or 0, out.getvalue().decode(), err.getvalue().decode()


@pytest.mark.parametrize("command", [[], ["access", "review", "list"], ["push"], ["analyze"], ["demo"]])
def test_flags_show_no_value_type(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if not command:
        shown = subprocess.run([sys.executable, "-m", "releasehub", "--help"], capture_output=True, text=True,
                               env={**os.environ, "COLUMNS": "100"}, timeout=120)
        returncode, stdout, stderr = shown.returncode, shown.stdout, shown.stderr
    else:
        returncode, stdout, stderr = _help_in_process(command, monkeypatch)
    assert returncode == 0, stderr
    assert "--help" in stdout
    assert "<bool>" not in stdout  # `--json`, not `--json <bool>`: a flag takes no value


def _every_command() -> list[list[str]]:
    import typer.main

    from releasehub.cli.main import build_app

    found: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:  # typer's own click: a group has `commands`
        found.append(path)
        if hasattr(command, "commands"):
            for name, sub in sorted(command.commands.items()):
                walk(sub, [*path, name])

    walk(typer.main.get_command(build_app()), [])
    return found[1:]


@pytest.mark.parametrize("command", _every_command(), ids=" ".join)
def test_every_commands_help_renders(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Help texts are rich markup: a bracket in one (`s3://BUCKET[/PREFIX]`) must be escaped, or
    `--help` of that command crashes with a MarkupError instead of printing."""
    returncode, stdout, stderr = _help_in_process(command, monkeypatch)
    assert returncode == 0, stderr
    assert "Usage:" in stdout and "--help" in stdout, stdout
