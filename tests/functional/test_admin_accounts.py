"""Users, organisations and tokens over HTTP (issue 12, "one way to reach the server").

README's flow, as an operator runs it from a folder that is not the server's: the first admin
written straight into the server's database (`users create NAME --admin --local`), then every
other account command over HTTP with that admin's token, and `hf auth whoami` with the token it
minted. Refusals change nothing: a non-admin token creates no user, a read token mints no write
token, someone else's token id answers as a missing one, a plain member manages no organisation,
and the local command creates no database.

Commands that talk HTTP run in this process (the server is the same live one); the ones that find a
database from flags, the working directory or the environment run, once per flow at least, as a
process of their own.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from huggingface_hub import HfApi
from sqlalchemy import select
from typer.testing import CliRunner

from releasehub.accounts import service as accounts
from releasehub.accounts import sessions
from releasehub.accounts.models import Membership, User
from releasehub.auditlog.models import AuditEvent
from releasehub.cli.main import app
from clirunner import Done, in_process_cli

PASSWORD = "correct horse battery"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _clean_env() -> dict[str, str]:
    # Nothing may point the command at a database or a server but what the test passes.
    return {k: v for k, v in os.environ.items()
            if not k.startswith("RELEASEHUB_") and k not in ("HF_TOKEN", "HF_ENDPOINT")}


def _run(args: list[str], cwd: Path, env: dict[str, str], input: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "releasehub", *args], cwd=cwd, env={**env, "COLUMNS": "200"},
                          input=input, capture_output=True, text=True, timeout=120)


def _run_here(args: list[str], env: dict[str, str]) -> Done:
    """As `_run`, in this process, with the environment `env` alone (whatever else this process has is
    removed while the command runs): for commands that find everything in their flags and environment (a
    server's URL, a database's place), nothing in the working directory."""
    removed: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    return in_process_cli(args, {**removed, **env, "COLUMNS": "200"})


def _local_flags(server: Any, backend: str) -> list[str]:
    """How the operator names the server's database: as they passed it to `releasehub serve`."""
    return ["--data-dir", str(server.data_dir)] if backend == "sqlite" else ["--database-url", server.database_url]


def _cli(server: Any, token: str | None, *args: str, input: str | None = None) -> Result:
    """The CLI in-process, as a user with HF_ENDPOINT and HF_TOKEN set."""
    env = {"HF_ENDPOINT": server.url, "HF_TOKEN": token, "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), env=env, input=input)


def _user_exists(server: Any, name: str) -> bool:
    with server.db.session() as session:
        return session.scalar(select(User.id).where(User.name == name)) is not None


def _one_line_error(result: Result, text: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], result.stderr


def test_readme_flow_from_another_folder(server: Any, backend: str, tmp_path: Path) -> None:
    admin, alice = _name("admin"), _name("alice")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env()
    first = _run(["users", "create", admin, "--admin", "--local", *_local_flags(server, backend)], elsewhere, env)
    assert first.returncode == 0, first.stderr
    assert "directly in the server's database" in first.stdout
    assert f"data dir: {server.data_dir}" in first.stderr or backend != "sqlite"  # it says which database
    admin_token = first.stdout.strip().splitlines()[-1]
    assert admin_token.startswith("rh_")
    assert not (elsewhere / ".releasehub").exists()  # nothing made where the command ran

    # The rest talks HTTP to the server: in this process (nothing in it depends on the working directory).
    env = {**env, "HF_ENDPOINT": server.url, "HF_TOKEN": admin_token}
    created = _run_here(["users", "create", alice, "--email", f"{alice}@example.org", "--email-verified"], env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"created user {alice}"
    minted = _run_here(["tokens", "create", alice, "--scope", "write", "--name", "laptop"], env)
    assert minted.returncode == 0, minted.stderr
    lines = minted.stdout.strip().splitlines()
    assert "created write token" in lines[0] and f"(laptop) for {alice}" in lines[0]
    secret = lines[-1]
    me = HfApi(endpoint=server.url, token=secret).whoami()
    assert me["name"] == alice and me["emailVerified"] is True and me["auth"]["accessToken"]["role"] == "write"

    listed = _run_here(["users", "list"], env)
    assert listed.returncode == 0 and alice in listed.stdout and admin in listed.stdout
    tokens = _run_here(["tokens", "list", alice], env)
    assert tokens.returncode == 0 and "laptop" in tokens.stdout and secret not in tokens.stdout
    assert secret[:9] in tokens.stdout  # the prefix tells tokens apart
    # The secret is never answered again.
    assert secret not in httpx.get(f"{server.url}/api/tokens", params={"user": alice},
                                   headers={"Authorization": f"Bearer {admin_token}"}).text

    # Every change is an audit event naming the admin.
    with server.db.session() as session:
        actions = {(e.action, e.actor) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.actor == admin))}
    assert {("user.created", admin), ("token.created", admin)} <= actions


def test_users_set_email_and_password_over_http(server: Any) -> None:
    _, admin_token = server.user(_name("admin"), admin=True)
    ada, _ = server.user(_name("ada"))
    with server.db.session() as session:
        old = sessions.start(session, sessions.SignIn(accounts.get_user(session, ada), "write"))
    email = _cli(server, admin_token, "users", "set-email", ada, f"{ada}@example.org", "--verified")
    assert email.exit_code == 0 and "(verified)" in email.stdout, email.output
    prompt = _cli(server, admin_token, "users", "set-password", ada, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompt.exit_code == 0, prompt.output
    assert PASSWORD not in prompt.output  # hidden input is not echoed
    with server.db.session() as session:
        assert sessions.check_password(session, ada, PASSWORD) is not None
        assert sessions.subject_of(session, old) is None  # a new password ends old sessions
        user = accounts.get_user(session, ada)
        assert user.email == f"{ada}@example.org" and user.email_verified
    line = _cli(server, admin_token, "users", "set-password", ada, "--stdin", input="another password!\r\nignored\n")
    assert line.exit_code == 0, line.output
    with server.db.session() as session:
        assert sessions.check_password(session, ada, "another password!") is not None

    _one_line_error(_cli(server, admin_token, "users", "set-password", ada, "--stdin", input="short\n"),
                    "at least 10 characters")
    _one_line_error(_cli(server, admin_token, "users", "set-password", ada, "--stdin", input=""),
                    "no password on standard input")
    mismatch = _cli(server, admin_token, "users", "set-password", ada, input=f"{PASSWORD}\n{PASSWORD}x\n")
    assert mismatch.exit_code != 0 and "do not match" in mismatch.output
    _one_line_error(_cli(server, admin_token, "users", "set-password", _name("nobody"), "--stdin",
                         input=f"{PASSWORD}\n"), "No user named")
    with server.db.session() as session:
        assert sessions.check_password(session, ada, "another password!") is not None


def test_a_non_admin_token_creates_no_user(server: Any) -> None:
    plain, token = server.user(_name("plain"))
    victim, _ = server.user(_name("victim"))
    bob = _name("bob")
    _one_line_error(_cli(server, token, "users", "create", bob), "not a server admin")
    assert not _user_exists(server, bob)
    _one_line_error(_cli(server, token, "users", "list"), "not a server admin")
    _one_line_error(_cli(server, token, "users", "set-password", victim, "--stdin", input=f"{PASSWORD}\n"),
                    "not a server admin")
    _one_line_error(_cli(server, token, "tokens", "create", victim, "--scope", "write"), "not a server admin")
    _one_line_error(_cli(server, token, "tokens", "list", victim), "not a server admin")
    _one_line_error(_cli(server, token, "orgs", "create", _name("org"), "--owner", victim), "not a server admin")
    with server.db.session() as session:
        assert sessions.check_password(session, victim, PASSWORD) is None
        assert len(accounts.list_tokens(session, victim)) == 1
    # An admin's read token is not enough either: admin actions need write scope.
    admin, _ = server.user(_name("admin"), admin=True)
    read = server.token(admin, scope="read")
    _one_line_error(_cli(server, read, "users", "create", bob), "read-only")
    assert not _user_exists(server, bob)
    # Anonymous: 401, the message says to sign in.
    answer = httpx.post(f"{server.url}/api/admin/users", json={"name": bob})
    assert answer.status_code == 401 and not _user_exists(server, bob)
    # With no token at all, the CLI says what to pass.
    nothing = _cli(server, None, "users", "list")
    assert nothing.exit_code in (1, 2) and "no token" in nothing.stderr


def test_a_read_token_cannot_mint_a_write_token(server: Any) -> None:
    user, _ = server.user(_name("reader"))
    read = server.token(user, scope="read")
    _one_line_error(_cli(server, read, "tokens", "create", "--scope", "write"), "read-only")
    with server.db.session() as session:
        assert [t.scope for t in accounts.list_tokens(session, user)] == ["write", "read"]
    own = _cli(server, read, "tokens", "create", "--name", "ci")
    assert own.exit_code == 0, own.output
    assert "created read token" in own.stdout and f"(ci) for {user}" in own.stdout
    assert HfApi(endpoint=server.url, token=own.stdout.strip().splitlines()[-1]).whoami()["name"] == user
    listed = _cli(server, read, "tokens", "list")
    assert listed.exit_code == 0 and "ci" in listed.stdout
    _one_line_error(_cli(server, read, "tokens", "create", "--expires-in", "0"), "positive number of days")
    expiring = _cli(server, read, "tokens", "create", "--expires-in", "30")
    assert expiring.exit_code == 0 and ", expires 20" in expiring.stdout, expiring.output


def test_someone_elses_token_id_answers_as_a_missing_one(server: Any) -> None:
    alice, alice_token = server.user(_name("alice"))
    bob, bob_token = server.user(_name("bob"))
    with server.db.session() as session:
        (alice_id,) = [t.id for t in accounts.list_tokens(session, alice)]
    missing = 2**31 - 1

    def revoke(token_id: int, as_token: str) -> httpx.Response:
        return httpx.delete(f"{server.url}/api/tokens/{token_id}", headers={"Authorization": f"Bearer {as_token}"})

    theirs, nothing = revoke(alice_id, bob_token), revoke(missing, bob_token)
    assert theirs.status_code == nothing.status_code == 404
    assert theirs.headers["x-error-code"] == nothing.headers["x-error-code"] == "TokenNotFound"
    assert theirs.json()["error"].replace(str(alice_id), "N") == nothing.json()["error"].replace(str(missing), "N")
    cli = _cli(server, bob_token, "tokens", "revoke", str(alice_id))
    _one_line_error(cli, f"No token with id {alice_id}")
    assert HfApi(endpoint=server.url, token=alice_token).whoami()["name"] == alice  # still works

    # Their own: revoked, and it stops working on the next request.
    own = _cli(server, alice_token, "tokens", "revoke", str(alice_id))
    assert own.exit_code == 0 and f"revoked token {alice_id}" in own.stdout, own.output
    assert httpx.get(f"{server.url}/api/whoami-v2", headers={"Authorization": f"Bearer {alice_token}"}
                     ).status_code == 401
    # A server admin revokes anybody's.
    _, admin_token = server.user(_name("admin"), admin=True)
    with server.db.session() as session:
        (bob_id,) = [t.id for t in accounts.list_tokens(session, bob)]
    by_admin = _cli(server, admin_token, "tokens", "revoke", str(bob_id))
    assert by_admin.exit_code == 0 and f"of {bob}" in by_admin.stdout, by_admin.output
    with server.db.session() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "token.revoked")))
    assert any(e.details == {"user": bob, "token": bob_id} for e in events)


def test_org_admins_manage_members_and_plain_members_cannot(server: Any) -> None:
    owner, owner_token = server.user(_name("owner"))
    member, member_token = server.user(_name("member"))
    outsider, outsider_token = server.user(_name("outsider"))
    newcomer, _ = server.user(_name("newcomer"))
    org = _name("lab")
    made = _cli(server, owner_token, "orgs", "create", org, "--fullname", "The Lab")
    assert made.exit_code == 0 and made.stdout.strip() == f"created organisation {org} with admin {owner}", made.output
    added = _cli(server, owner_token, "orgs", "add-member", org, member, "--role", "read")
    assert added.exit_code == 0 and added.stdout.strip() == f"{member} is now read in {org}", added.output
    assert {o["name"]: o["roleInOrg"] for o in HfApi(endpoint=server.url, token=member_token).whoami()["orgs"]} \
        == {org: "read"}

    # A plain member sees the organisation but may not manage it: 403.
    _one_line_error(_cli(server, member_token, "orgs", "add-member", org, newcomer), "not an admin")
    _one_line_error(_cli(server, member_token, "orgs", "remove-member", org, owner), "not an admin")
    # An outsider: the organisation does not exist for them, exactly like a missing one.
    hidden = httpx.put(f"{server.url}/api/orgs/{org}/members/{newcomer}", json={"role": "write"},
                       headers={"Authorization": f"Bearer {outsider_token}"})
    missing = httpx.put(f"{server.url}/api/orgs/no-such-{org}/members/{newcomer}", json={"role": "write"},
                        headers={"Authorization": f"Bearer {outsider_token}"})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"].replace(org, "X") == missing.json()["error"].replace(f"no-such-{org}", "X")
    with server.db.session() as session:
        org_id = accounts.get_org(session, org).id
        roles = {m.user.name: m.role for m in session.scalars(select(Membership).where(Membership.org_id == org_id))}
    assert roles == {owner: "admin", member: "read"}

    # Listing: each user their own organisations; an outsider none of this one.
    mine = _cli(server, member_token, "orgs", "list")
    assert mine.exit_code == 0 and org in mine.stdout and "read" in mine.stdout
    assert org not in _cli(server, outsider_token, "orgs", "list").stdout
    # The admin promotes, then removes.
    assert _cli(server, owner_token, "orgs", "add-member", org, member, "--role", "admin").exit_code == 0
    assert _cli(server, member_token, "orgs", "add-member", org, newcomer).exit_code == 0  # now an admin
    removed = _cli(server, owner_token, "orgs", "remove-member", org, newcomer)
    assert removed.exit_code == 0 and removed.stdout.strip() == f"{newcomer} removed from {org}"
    # A read token manages nothing.
    read = server.token(owner, scope="read")
    _one_line_error(_cli(server, read, "orgs", "add-member", org, outsider), "read-only")
    with server.db.session() as session:
        events = {e.action for e in session.scalars(select(AuditEvent).where(AuditEvent.actor == owner))}
    assert {"org.created", "org.member_added", "org.member_removed"} <= events


def test_the_local_admin_command_refuses_a_missing_database(tmp_path: Path) -> None:
    env = _clean_env()
    nowhere = tmp_path / "no-server-here"
    result = _run_here(["users", "create", "root", "--admin", "--local", "--data-dir", str(nowhere)], env)
    assert result.returncode == 1, result.stdout
    assert f"no releasehub database at {nowhere}" in result.stderr and "start the server once" in result.stderr
    assert "releasehub db upgrade" in result.stderr
    assert not nowhere.exists() and not result.stdout.strip()  # no token printed, nothing created

    # A file that is not a releasehub database (no schema) is refused too, and left as it was.
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    sqlite3.connect(empty_dir / "releasehub.db").close()
    result = _run_here(["users", "create", "root", "--admin", "--local", "--data-dir", str(empty_dir)], env)
    assert result.returncode == 1 and "no releasehub database at" in result.stderr
    with sqlite3.connect(empty_dir / "releasehub.db") as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []

    # The default place (no flags), which holds no database here, is not made either: a process of its own,
    # which finds that place from its environment and working directory.
    home = {**env, "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    result = _run(["users", "create", "root", "--admin", "--local"], tmp_path, home)
    assert result.returncode == 1 and "no releasehub database at" in result.stderr
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()
    assert not (tmp_path / ".releasehub").exists()


def test_local_is_for_the_first_admin_only(server: Any, backend: str, tmp_path: Path) -> None:
    env = _clean_env()
    flags = _local_flags(server, backend)
    name = _name("plain")
    refused = _run_here(["users", "create", name, "--local", *flags], env)
    assert refused.returncode == 2 and "--local creates the first admin only" in refused.stderr
    refused = _run_here(["users", "create", name, *flags], {**env, "HF_ENDPOINT": server.url, "HF_TOKEN": "x"})
    assert refused.returncode == 2 and "go with --local" in refused.stderr
    assert not _user_exists(server, name)
    taken, _ = server.user(_name("taken"))
    result = _run(["users", "create", taken, "--admin", "--local", *flags], tmp_path, env)
    assert result.returncode == 1 and "already used" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("body", [{"name": "x", "scope": "admin"}, {"name": "x", "expiresInDays": 0}])
def test_bad_token_requests_are_400(server: Any, body: dict[str, Any]) -> None:
    _, token = server.user(_name("u"))
    answer = httpx.post(f"{server.url}/api/tokens", json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code in (400, 422), answer.text
