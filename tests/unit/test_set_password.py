"""`releasehub users set-password`: a hidden, confirmed prompt or one line of stdin, on the local database."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from releasehub.accounts import service as accounts
from releasehub.accounts import sessions
from releasehub.cli.main import app
from releasehub.db import Database
from releasehub.settings import Settings

PASSWORD = "correct horse battery"


def _invoke(data_dir: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, ["users", *args, "--data-dir", str(data_dir)], input=input,
                              env={"COLUMNS": "200"})


def _db(data_dir: Path) -> Database:
    return Database(Settings(data_dir=data_dir).resolved_database_url)


def _signs_in(data_dir: Path, password: str) -> bool:
    db = _db(data_dir)
    try:
        with db.session() as session:
            return sessions.check_password(session, "ada", password) is not None
    finally:
        db.dispose()


def test_prompt_sets_the_password_and_ends_old_sessions(tmp_path: Path) -> None:
    assert _invoke(tmp_path, "create", "ada").exit_code == 0
    db = _db(tmp_path)
    with db.session() as session:
        old = sessions.start(session, sessions.SignIn(accounts.get_user(session, "ada"), "write"))
    result = _invoke(tmp_path, "set-password", "ada", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden input is not echoed
    assert _signs_in(tmp_path, PASSWORD) and not _signs_in(tmp_path, "something else entirely")
    with db.session() as session:
        assert sessions.subject_of(session, old) is None
    db.dispose()


def test_stdin_reads_one_line(tmp_path: Path) -> None:
    _invoke(tmp_path, "create", "ada")
    result = _invoke(tmp_path, "set-password", "ada", "--stdin", input=f"{PASSWORD}\r\nignored second line\n")
    assert result.exit_code == 0, result.output
    assert _signs_in(tmp_path, PASSWORD)


def test_refusals_are_one_clear_line_and_change_nothing(tmp_path: Path) -> None:
    _invoke(tmp_path, "create", "ada")
    short = _invoke(tmp_path, "set-password", "ada", "--stdin", input="short\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    assert "Traceback" not in short.output
    empty = _invoke(tmp_path, "set-password", "ada", "--stdin", input="")
    assert empty.exit_code == 1 and "no password on standard input" in empty.output
    mismatch = _invoke(tmp_path, "set-password", "ada", input=f"{PASSWORD}\n{PASSWORD}x\n")
    assert mismatch.exit_code != 0 and "do not match" in mismatch.output
    unknown = _invoke(tmp_path, "set-password", "nobody", "--stdin", input=f"{PASSWORD}\n")
    assert unknown.exit_code == 1 and "No user named 'nobody'" in unknown.output
    assert not _signs_in(tmp_path, PASSWORD) and not _signs_in(tmp_path, f"{PASSWORD}x")
