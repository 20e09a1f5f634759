"""The `releasehub` CLI in-process, answering what a subprocess would: exit status, stdout and stderr.

A command that talks to a server speaks HTTP to it whether it runs in its own process or in the
test's, so a test that proves what the server allows can run it here, without the interpreter start
and imports (about 1.5 s a command on a quiet machine). What only a real process shows (the entry
point, the exit status a shell sees, a traceback on stderr) is for the test's one true subprocess:
`subprocess_cli`.

`in_process_cli` keeps the two interchangeable for the assertions: an exception that escapes the
command is not swallowed into a result that might look like a refusal; it becomes exit status 1 and
the traceback on stderr, as Python prints it, so "one line on stderr, no traceback" fails alike.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass

from typer.testing import CliRunner


@dataclass(frozen=True)
class Done:
    """What the command did, with the attribute names of subprocess.CompletedProcess."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def in_process_cli(args: list[str], env: Mapping[str, str | None], *, input: str | None = None) -> Done:
    """`releasehub ARGS` in this process, with `env` on top of this process's environment (None removes)."""
    from releasehub.cli.main import app

    result = CliRunner().invoke(app, args, env=dict(env), input=input, prog_name="releasehub")
    stderr = result.stderr
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        assert result.exc_info is not None
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return Done(["releasehub", *args], result.exit_code, result.stdout, stderr)


def subprocess_cli(args: list[str], env: Mapping[str, str | None], *, input: str | None = None,
                   cwd: str | os.PathLike[str] | None = None) -> Done:
    """`python -m releasehub ARGS` in a process of its own, with `env` on top of this one's (None removes)."""
    merged = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    done = subprocess.run([sys.executable, "-m", "releasehub", *args], capture_output=True, text=True,
                          env=merged, input=input, cwd=cwd, timeout=120, check=False)
    return Done(["releasehub", *args], done.returncode, done.stdout, done.stderr)
