"""`releasehub users`, `releasehub orgs`, `releasehub tokens`: accounts, over the server's HTTP API.

Like every command that acts on the server, these reach it one way: `--endpoint`/`HF_ENDPOINT`
and `--token`/`HF_TOKEN` (or a stored `releasehub login`). Users are a server admin's business;
organisations and tokens are also each user's own (see `releasehub.accounts.admin_routes`).

One exception: the first admin. Nobody holds an admin token yet, so
`releasehub users create NAME --admin --local` writes that user and a write token straight into
the server's database (`--data-dir`/`--database-url`, as given to `releasehub serve`). It
refuses a database that does not exist yet, rather than create an empty one the server never reads.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

import typer
from rich.table import Table

from releasehub.cli.common import DatabaseUrlOption, DataDirOption, console, err_console, existing_database, \
    friendly_errors, load_settings, show_data_dir
from releasehub.cli.remote import EndpointOption, TokenOption, remote

users_app = typer.Typer(help="Manage users (server admins; over HTTP, except the first admin's --local).",
                        no_args_is_help=True)
orgs_app = typer.Typer(help="Manage organisations and their members (over HTTP).", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage access tokens (over HTTP; stored hashed, the secret shown once).",
                         no_args_is_help=True)


def _q(name: str) -> str:
    return quote(name, safe="")


def _say(text: str) -> None:
    # Names and emails are shown as they are, never read as rich markup.
    console.print(text, markup=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)


# ----------------------------------------------------------------------------------------- users


@users_app.command("create")
def users_create(
    name: str,
    admin: bool = typer.Option(False, "--admin", help="Make the user a server administrator."),
    email: Optional[str] = typer.Option(None, "--email"),
    email_verified: bool = typer.Option(False, "--email-verified",
                                        help="The operator vouches for the email (eligibility rules trust it)."),
    fullname: Optional[str] = typer.Option(None, "--fullname"),
    local: bool = typer.Option(False, "--local",
                               help="The FIRST admin only (with --admin): write the user and a write token "
                                    "directly into the server's database (--data-dir/--database-url, as given to "
                                    "`releasehub serve`) instead of over HTTP. Refuses a database that does not exist."),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Create a user (needs an admin token; the first admin: --admin --local on the server's database)."""
    if local:
        if not admin:
            raise _fail("--local creates the first admin only: add --admin. Create other users over HTTP with "
                        "that admin's token.", 2)
        _create_first_admin(name, email, email_verified, fullname, data_dir, database_url)
        return
    if data_dir is not None or database_url is not None:
        raise _fail("--data-dir and --database-url go with --local (the first admin); other users are created "
                    "over HTTP (--endpoint, --token).", 2)
    with remote(endpoint, token) as api:
        user = api.json("POST", "/api/admin/users", json={
            "name": name, "email": email, "emailVerified": email_verified, "fullname": fullname, "admin": admin})
    _say(f"created user {user['name']}" + (" (admin)" if user["isAdmin"] else ""))


def _create_first_admin(name: str, email: Optional[str], email_verified: bool, fullname: Optional[str],
                        data_dir: Optional[Path], database_url: Optional[str]) -> None:
    from releasehub.accounts import service as accounts

    settings = load_settings(data_dir, database_url)
    show_data_dir(settings, data_dir)
    with friendly_errors(), existing_database(settings) as db:
        with db.session() as session:
            accounts.create_user(session, name, email=email, fullname=fullname, admin=True,
                                 email_verified=email_verified)
            token, secret = accounts.create_token(session, name, name="first-admin", scope="write")
            token_id = token.id
    _say(f"created user {name} (admin) directly in the server's database")
    _say(f"created write token {token_id} (first-admin) for {name}; it is shown only once. Sign in with "
         "`releasehub login --endpoint URL --token TOKEN` (or set HF_ENDPOINT and HF_TOKEN), then manage "
         "accounts over HTTP:")
    # Plain print: the last line is the bare secret, for scripts (`| tail -n1`).
    print(secret)


@users_app.command("set-email")
def users_set_email(
    name: str,
    email: str,
    verified: bool = typer.Option(False, "--verified", help="The operator vouches for the email."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Set a user's email, verified or not (releasehub sends no mail: the operator verifies)."""
    with remote(endpoint, token) as api:
        api.json("PUT", f"/api/admin/users/{_q(name)}/email", json={"email": email, "verified": verified})
    _say(f"{name}: email {email}" + (" (verified)" if verified else " (not verified)"))


def _read_password(from_stdin: bool) -> str:
    """The new password: one line of stdin (its line ending dropped), or a hidden, confirmed prompt."""
    if not from_stdin:
        return str(typer.prompt("New password", hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline()
    if not line:
        raise _fail("--stdin: no password on standard input (give it as one line).")
    return line.rstrip("\r\n")


@users_app.command("set-password")
def users_set_password(
    name: str,
    stdin: bool = typer.Option(False, "--stdin", help="Read the password as one line from standard input "
                                                      "(for scripts) instead of a hidden prompt."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Set a user's password for signing in to the web pages (ends their signed-in sessions)."""
    password = _read_password(stdin)
    with remote(endpoint, token) as api:
        api.json("PUT", f"/api/admin/users/{_q(name)}/password", json={"password": password})
    _say(f"password set for {name}; their browser sessions, if any, were ended")


@users_app.command("list")
def users_list(endpoint: Optional[str] = EndpointOption, token: Optional[str] = TokenOption) -> None:
    """List users."""
    with remote(endpoint, token) as api:
        users = api.json("GET", "/api/admin/users")
    table = Table("name", "email", "admin", "created")
    for user in users:
        email = (user["email"] or "") + (" (verified)" if user["email"] and user["emailVerified"] else "")
        table.add_row(user["name"], email, "yes" if user["isAdmin"] else "", user["createdAt"])
    console.print(table)


# --------------------------------------------------------------------------------- organisations


@orgs_app.command("create")
def orgs_create(
    name: str,
    owner: Optional[str] = typer.Option(None, "--owner", help="User who becomes the organisation's first admin "
                                                              "(default: you; another user needs an admin token)."),
    fullname: Optional[str] = typer.Option(None, "--fullname"),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Create an organisation with OWNER (default: you) as its admin."""
    with remote(endpoint, token) as api:
        org = api.json("POST", "/api/orgs", json={"name": name, "owner": owner, "fullname": fullname})
    _say(f"created organisation {org['name']} with admin {org['owner']}")


@orgs_app.command("add-member")
def orgs_add_member(
    org: str,
    user: str,
    role: str = typer.Option("write", "--role", help="read, write or admin."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Add USER to ORG (or change their role): ORG's admins, or a server admin."""
    with remote(endpoint, token) as api:
        out = api.json("PUT", f"/api/orgs/{_q(org)}/members/{_q(user)}", json={"role": role})
    _say(f"{user} is now {out['role']} in {org}")


@orgs_app.command("remove-member")
def orgs_remove_member(org: str, user: str, endpoint: Optional[str] = EndpointOption,
                       token: Optional[str] = TokenOption) -> None:
    """Remove USER from ORG: ORG's admins, or a server admin."""
    with remote(endpoint, token) as api:
        api.json("DELETE", f"/api/orgs/{_q(org)}/members/{_q(user)}")
    _say(f"{user} removed from {org}")


@orgs_app.command("list")
def orgs_list(endpoint: Optional[str] = EndpointOption, token: Optional[str] = TokenOption) -> None:
    """List your organisations (a server admin: all of them)."""
    with remote(endpoint, token) as api:
        orgs = api.json("GET", "/api/orgs")
    table = Table("name", "your role", "created")
    for org in orgs:
        table.add_row(org["name"], org["roleInOrg"] or "", org["createdAt"])
    console.print(table)


# ---------------------------------------------------------------------------------------- tokens


@tokens_app.command("create")
def tokens_create(
    user: Optional[str] = typer.Argument(None, help="Whose token (default: yours; another user's needs an admin "
                                                    "token)."),
    name: str = typer.Option("default", "--name", help="A label to tell tokens apart."),
    scope: str = typer.Option("read", "--scope", help="read or write (a read token may create read tokens only)."),
    expires_in: Optional[int] = typer.Option(None, "--expires-in", help="Days until the token expires."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Create a token. The secret is printed once, as the last line."""
    with remote(endpoint, token) as api:
        out = api.json("POST", "/api/tokens", json={"user": user, "name": name, "scope": scope,
                                                    "expiresInDays": expires_in})
    expiry = f", expires {out['expiresAt'][:10]}" if out["expiresAt"] else ""
    _say(f"created {out['scope']} token {out['id']} ({out['name']}) for {out['user']}{expiry}; "
         "it is shown only once:")
    # Plain print: the last line is the bare secret, for scripts (`| tail -n1`).
    print(out["token"])


@tokens_app.command("list")
def tokens_list(
    user: Optional[str] = typer.Argument(None, help="Whose tokens (default: yours; another user's needs an admin "
                                                    "token)."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """List tokens (never their secrets)."""
    with remote(endpoint, token) as api:
        tokens: list[dict[str, Any]] = api.json("GET", "/api/tokens", params={"user": user} if user else None)
    table = Table("id", "user", "name", "scope", "prefix", "created", "expires", "status")
    for t in tokens:
        table.add_row(str(t["id"]), t["user"], t["name"], t["scope"], t["prefix"] + "…", t["createdAt"][:10],
                      t["expiresAt"][:10] if t["expiresAt"] else "never", t["status"])
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: int = typer.Argument(..., help="Token id, from `releasehub tokens list`."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Revoke a token (yours; an admin: anybody's); it stops working on the next request."""
    with remote(endpoint, token) as api:
        out = api.json("DELETE", f"/api/tokens/{token_id}")
    _say(f"revoked token {out['id']} ({out['name']}) of {out['user']}")
