"""`releasehub login|logout|whoami`, the stored login every server command uses, and the one data dir.

The login checks its token against a live server (the `server` fixture, SQLite and PostgreSQL);
RELEASEHUB_CONFIG, RELEASEHUB_DATA_DIR, XDG_* and HOME point into tmp paths, never the real home.
"""

from __future__ import annotations

import json
import stat
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import Result
from huggingface_hub import HfApi
from typer.testing import CliRunner

from releasehub.cli.main import app
from releasehub.settings import Settings, default_data_dir
from conftest import ServerProcess, free_port

runner = CliRunner()


def invoke(config: Path, *args: str, input: str | None = None, **env: str | None) -> Result:
    """The CLI with its stored login in `config`; HF_ENDPOINT/HF_TOKEN unset unless given."""
    environ: dict[str, str | None] = {"RELEASEHUB_CONFIG": str(config), "HF_ENDPOINT": None, "HF_TOKEN": None,
                                      "COLUMNS": "200", **env}
    return runner.invoke(app, list(args), input=input, env=environ)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "cfg" / "releasehub" / "login.json"


@pytest.fixture
def repo(server: ServerProcess) -> tuple[str, str, str]:
    """(user, token, repo id) of a fresh user owning a fresh repo."""
    user, token = server.user()
    repo_id = f"{user}/m-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.url, token=token).create_repo(repo_id)
    return user, token, repo_id


class Recorder:
    """A loopback HTTP server that records the Authorization header of every request and answers 401."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                recorder.seen.append(self.headers.get("Authorization"))
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.httpd.shutdown()
    rec.httpd.server_close()


# ------------------------------------------------------------------ login, later commands, logout


def test_login_stores_a_private_file_and_later_commands_use_it(
        server: ServerProcess, repo: tuple[str, str, str], config: Path) -> None:
    user, token, repo_id = repo
    done = invoke(config, "login", "--endpoint", server.url + "/", "--token", "-", input=token + "\n")
    assert done.exit_code == 0, done.output
    assert f"signed in to {server.url} as {user}" in done.output
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert json.loads(config.read_text()) == {"endpoint": server.url, "token": token, "user": user}
    assert not list(config.parent.glob(".*.tmp"))  # written through a temporary file, none left

    # No HF_ENDPOINT, no HF_TOKEN: the stored login answers.
    listed = invoke(config, "webhooks", "list", repo_id)
    assert listed.exit_code == 0, listed.output
    status = invoke(config, "access", "status", repo_id)
    assert status.exit_code == 0, status.output
    me = invoke(config, "whoami")
    assert me.exit_code == 0, me.output
    assert f"user: {user}" in me.output
    assert f"endpoint: {server.url} (from stored login {config})" in me.output
    assert f"(from stored login {config})" in me.output.split("token:")[1]

    # The flag and the environment win, and whoami says which was used.
    other, other_token = server.user()
    flagged = invoke(config, "whoami", "--token", other_token)
    assert f"user: {other}" in flagged.output and "(from --token)" in flagged.output
    env = invoke(config, "whoami", HF_ENDPOINT=server.url, HF_TOKEN=other_token)
    assert f"user: {other}" in env.output
    assert "(from HF_ENDPOINT)" in env.output and "(from HF_TOKEN)" in env.output

    out = invoke(config, "logout")
    assert out.exit_code == 0 and f"removed {config}" in out.output and not config.exists()
    after = invoke(config, "webhooks", "list", repo_id)
    assert after.exit_code == 1
    assert "pass --endpoint URL or set HF_ENDPOINT, or run `releasehub login`" in after.output
    assert "not signed in" in invoke(config, "logout").output


def test_the_token_is_read_from_a_hidden_prompt_or_stdin(server: ServerProcess, config: Path) -> None:
    user, token = server.user()
    prompted = invoke(config, "login", "--endpoint", server.url, input=token + "\n")
    assert prompted.exit_code == 0, prompted.output
    assert token not in prompted.output  # hidden: not echoed
    assert json.loads(config.read_text())["token"] == token
    # --stdin, and the endpoint from HF_ENDPOINT; a second login replaces the first.
    second, second_token = server.user()
    piped = invoke(config, "login", "--stdin", input=second_token + "\n", HF_ENDPOINT=server.url)
    assert piped.exit_code == 0 and f"as {second}" in piped.output
    assert json.loads(config.read_text())["token"] == second_token


def test_a_bad_token_or_an_unreachable_server_stores_nothing(server: ServerProcess, config: Path) -> None:
    bad = invoke(config, "login", "--endpoint", server.url, "--token", "hf_not-a-token")
    assert bad.exit_code == 1
    assert "refused the token" in bad.output and "nothing stored" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    assert not config.exists() and not config.parent.exists()

    nowhere = f"http://127.0.0.1:{free_port()}"
    down = invoke(config, "login", "--endpoint", nowhere, "--token", "hf_x")
    assert down.exit_code == 1 and f"cannot reach {nowhere}" in down.output and "nothing stored" in down.output
    assert not config.exists()

    # A refused login leaves a stored one as it was.
    _, token = server.user()
    assert invoke(config, "login", "--endpoint", server.url, "--token", token).exit_code == 0
    before = config.read_text()
    assert invoke(config, "login", "--endpoint", server.url, "--token", "hf_wrong").exit_code == 1
    assert config.read_text() == before


def test_the_stored_token_is_not_sent_to_another_endpoint(
        server: ServerProcess, repo: tuple[str, str, str], config: Path, recorder: Recorder) -> None:
    _, token, repo_id = repo
    assert invoke(config, "login", "--endpoint", server.url, "--token", token).exit_code == 0

    by_flag = invoke(config, "webhooks", "list", repo_id, "--endpoint", recorder.url)
    by_env = invoke(config, "webhooks", "list", repo_id, HF_ENDPOINT=recorder.url)
    for refused in (by_flag, by_env):
        assert refused.exit_code == 1
        assert f"no token for {recorder.url}" in refused.output
        assert f"the stored login is for {server.url}" in refused.output and "not sent" in refused.output
    assert recorder.seen == []  # not even asked
    # A command that may go anonymous goes anonymous there, without the stored token.
    invoke(config, "access", "terms", repo_id, "--endpoint", recorder.url)
    assert recorder.seen and all(header is None for header in recorder.seen)
    assert not any(token in (h or "") for h in recorder.seen)
    # whoami says the same.
    me = invoke(config, "whoami", "--endpoint", recorder.url)
    assert me.exit_code == 1 and "not sent" in me.output
    # The same server spelt differently (trailing slash, upper-case host) is the same endpoint.
    same = invoke(config, "webhooks", "list", repo_id, "--endpoint", server.url.replace("http:", "HTTP:") + "/")
    assert same.exit_code == 0, same.output


def test_a_damaged_login_file_is_one_line_naming_it(config: Path) -> None:
    config.parent.mkdir(parents=True)
    config.write_text("{not json")
    result = invoke(config, "webhooks", "list", "a/b")
    assert result.exit_code == 1 and str(config) in result.output and "releasehub logout" in result.output
    assert invoke(config, "logout").exit_code == 0 and not config.exists()


def test_the_login_file_is_found_under_xdg_config_home(tmp_path: Path) -> None:
    from releasehub.cli.remote import config_path

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RELEASEHUB_CONFIG", raising=False)
        mp.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        assert config_path() == tmp_path / "xdg" / "releasehub" / "login.json"
        mp.delenv("XDG_CONFIG_HOME")
        mp.setenv("HOME", str(tmp_path / "home"))
        assert config_path() == tmp_path / "home" / ".config" / "releasehub" / "login.json"


# ------------------------------------------------------------------ one data dir, never a new empty database


def _printed_data_dir(result: Result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("data dir: ")]
    assert len(lines) == 1, result.output
    return lines[0].removeprefix("data dir: ").split(" (")[0]


def test_the_default_data_dir_does_not_depend_on_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"RELEASEHUB_DATA_DIR": None, "RELEASEHUB_DATABASE_URL": None, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    printed = []
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        result = invoke(tmp_path / "login.json", "db", "upgrade", **env)
        assert result.exit_code == 0, result.output
        printed.append(_printed_data_dir(result))
    expected = tmp_path / "xdg" / "releasehub"
    assert printed == [str(expected)] * 2
    assert (expected / "releasehub.db").is_file()
    assert not (tmp_path / "one" / ".releasehub").exists() and not (tmp_path / "two" / ".releasehub").exists()
    # audit verify, from yet another folder, finds the same database and says where it is.
    monkeypatch.chdir(tmp_path)
    verified = invoke(tmp_path / "login.json", "audit", "verify", **env)
    assert verified.exit_code == 0, verified.output
    assert _printed_data_dir(verified) == str(expected) and "intact: 0 events" in verified.output
    # Without XDG_DATA_HOME: ~/.local/share/releasehub; RELEASEHUB_DATA_DIR and --data-dir win, and are named.
    assert default_data_dir({}) == Path.home() / ".local" / "share" / "releasehub"
    assert default_data_dir({"XDG_DATA_HOME": "relative/path"}) == Path.home() / ".local" / "share" / "releasehub"
    assert Settings.from_env({"XDG_DATA_HOME": "/srv/x"}).data_dir == Path("/srv/x/releasehub")
    assert Settings.from_env({"XDG_DATA_HOME": "/srv/x", "RELEASEHUB_DATA_DIR": "/d"}).data_dir == Path("/d")
    chosen = invoke(tmp_path / "login.json", "db", "upgrade", **{**env, "RELEASEHUB_DATA_DIR": str(tmp_path / "d")})
    assert "(RELEASEHUB_DATA_DIR)" in chosen.output and _printed_data_dir(chosen) == str(tmp_path / "d")
    flagged = invoke(tmp_path / "login.json", "db", "upgrade", "--data-dir", str(tmp_path / "f"), **env)
    assert "(--data-dir)" in flagged.output and _printed_data_dir(flagged) == str(tmp_path / "f")


def test_audit_verify_and_checkpoint_refuse_a_missing_database_and_create_nothing(tmp_path: Path) -> None:
    env = {"RELEASEHUB_DATA_DIR": None, "RELEASEHUB_DATABASE_URL": None, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    for command in (["audit", "verify"], ["audit", "checkpoint"]):
        result = invoke(tmp_path / "login.json", *command, **env)
        assert result.exit_code == 1, result.output
        error = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert error == [f"error: no releasehub database at {tmp_path / 'xdg' / 'releasehub' / 'releasehub.db'}: "
                         "start the server once or run `releasehub db upgrade` (or pass --data-dir or "
                         "--database-url where the server keeps its data)"]
        assert "intact" not in result.output
    assert list(tmp_path.iterdir()) == []  # no folder, no database, no signing key
    # A file that is not a releasehub database (no schema) is refused too, and left as it was.
    empty = tmp_path / "empty.db"
    empty.touch()
    result = invoke(tmp_path / "login.json", "audit", "verify", "--database-url", f"sqlite:///{empty}")
    assert result.exit_code == 1 and "holds no releasehub tables" in result.output
    assert empty.stat().st_size == 0


def test_audit_verify_refuses_a_postgres_database_without_the_schema(postgres_url: str, tmp_path: Path) -> None:
    import psycopg

    name = f"releasehub_empty_{uuid.uuid4().hex[:8]}"
    admin = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        result = invoke(tmp_path / "login.json", "audit", "verify", "--database-url", url)
        assert result.exit_code == 1 and "no releasehub database at" in result.output
        assert "holds no releasehub tables" in result.output
        with psycopg.connect(url) as conn:
            tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert tables == (0,)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
