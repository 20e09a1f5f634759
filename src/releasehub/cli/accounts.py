"""`releasehub users`, `releasehub orgs`, `releasehub tokens`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from releasehub.accounts import service as accounts
from releasehub.accounts import sessions
from releasehub.cli.common import DatabaseUrlOption, DataDirOption, console, database, err_console, friendly_errors, \
    load_settings

users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
orgs_app = typer.Typer(help="Manage organisations and their members.", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage access tokens (stored hashed; shown once).", no_args_is_help=True)


@users_app.command("create")
def users_create(
    name: str,
    admin: bool = typer.Option(False, "--admin", help="Make the user a server administrator."),
    email: Optional[str] = typer.Option(None, "--email"),
    email_verified: bool = typer.Option(False, "--email-verified",
                                        help="The operator vouches for the email (eligibility rules trust it)."),
    fullname: Optional[str] = typer.Option(None, "--fullname"),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Create a user."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        user = accounts.create_user(session, name, email=email, fullname=fullname, admin=admin)
        user.email_verified = bool(email and email_verified)
        console.print(f"created user [bold]{user.name}[/bold]" + (" (admin)" if admin else ""))


@users_app.command("set-email")
def users_set_email(
    name: str,
    email: str,
    verified: bool = typer.Option(False, "--verified", help="The operator vouches for the email."),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Set a user's email, verified or not (releasehub sends no mail: the operator verifies)."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        user = accounts.get_user(session, name)
        user.email = email
        user.email_verified = verified
        console.print(f"{name}: email {email}" + (" (verified)" if verified else " (not verified)"))


def _read_password(from_stdin: bool) -> str:
    """The new password: one line of stdin (its line ending dropped), or a hidden, confirmed prompt."""
    if not from_stdin:
        return str(typer.prompt("New password", hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline()
    if not line:
        err_console.print("[red]error:[/red] --stdin: no password on standard input (give it as one line).")
        raise typer.Exit(1)
    return line.rstrip("\r\n")


@users_app.command("set-password")
def users_set_password(
    name: str,
    stdin: bool = typer.Option(False, "--stdin", help="Read the password as one line from standard input "
                                                      "(for scripts) instead of a hidden prompt."),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Set a user's password for signing in to the web pages (ends their signed-in sessions)."""
    password = _read_password(stdin)
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        sessions.set_password(session, name, password)
        console.print(f"password set for [bold]{name}[/bold]; their browser sessions, if any, were ended")


@users_app.command("list")
def users_list(data_dir: Optional[Path] = DataDirOption, database_url: Optional[str] = DatabaseUrlOption) -> None:
    """List users."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        table = Table("name", "email", "admin", "created")
        for user in accounts.list_users(session):
            table.add_row(user.name, user.email or "", "yes" if user.is_admin else "", user.created_at.isoformat())
        console.print(table)


@orgs_app.command("create")
def orgs_create(
    name: str,
    owner: str = typer.Option(..., "--owner", help="User who becomes the organisation's first admin."),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Create an organisation with OWNER as its admin."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        org = accounts.create_org(session, name, owner=owner)
        console.print(f"created organisation [bold]{org.name}[/bold] with admin {owner}")


@orgs_app.command("add-member")
def orgs_add_member(
    org: str,
    user: str,
    role: str = typer.Option("write", "--role", help="read, write or admin."),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Add USER to ORG (or change their role)."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        accounts.add_member(session, org, user, role)
        console.print(f"{user} is now {role} in {org}")


@orgs_app.command("remove-member")
def orgs_remove_member(
    org: str, user: str, data_dir: Optional[Path] = DataDirOption, database_url: Optional[str] = DatabaseUrlOption
) -> None:
    """Remove USER from ORG."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        accounts.remove_member(session, org, user)
        console.print(f"{user} removed from {org}")


@orgs_app.command("list")
def orgs_list(data_dir: Optional[Path] = DataDirOption, database_url: Optional[str] = DatabaseUrlOption) -> None:
    """List organisations."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        table = Table("name", "created")
        for org in accounts.list_orgs(session):
            table.add_row(org.name, org.created_at.isoformat())
        console.print(table)


@tokens_app.command("create")
def tokens_create(
    user: str,
    name: str = typer.Option("default", "--name", help="A label to tell tokens apart."),
    scope: str = typer.Option("read", "--scope", help="read or write."),
    expires_in: Optional[int] = typer.Option(None, "--expires-in", help="Days until the token expires."),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Create a token for USER. The secret is printed once, as the last line."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        token, secret = accounts.create_token(session, user, name=name, scope=scope, expires_in_days=expires_in)
        expiry = f", expires {token.expires_at.date().isoformat()}" if token.expires_at else ""
        console.print(f"created {scope} token {token.id} ({name}) for {user}{expiry}; it is shown only once:")
    # Plain print: the last line is the bare secret, for scripts (`| tail -n1`).
    print(secret)


@tokens_app.command("list")
def tokens_list(
    user: Optional[str] = typer.Argument(None),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """List tokens (never their secrets)."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        table = Table("id", "user", "name", "scope", "prefix", "created", "expires", "status")
        from releasehub.db import utcnow

        now = utcnow()
        for t in accounts.list_tokens(session, user):
            status = "revoked" if t.revoked_at else "expired" if t.expires_at and t.expires_at <= now else "active"
            table.add_row(str(t.id), t.user.name, t.name, t.scope, t.prefix + "…", t.created_at.date().isoformat(),
                          t.expires_at.date().isoformat() if t.expires_at else "never", status)
        console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: int = typer.Argument(..., help="Token id, from `releasehub tokens list`."),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Revoke a token; it stops working on the next request."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        token = accounts.revoke_token(session, token_id)
        console.print(f"revoked token {token.id} ({token.name}) of {token.user.name}")
