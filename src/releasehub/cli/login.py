"""`releasehub login`, `logout` and `whoami`: store the server and token every other command uses.

Like `hf auth login`: the token is checked against the server (`/api/whoami-v2`) before anything
is stored, and stored in a file only its owner can read (see `cli/remote.py` for where, and for how
commands use it).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

import httpx
import typer

from releasehub.cli.common import console
from releasehub.cli.remote import (
    FIX_ENDPOINT,
    LoginFileError,
    client,
    config_path,
    fail,
    missing_token_message,
    normalise_endpoint,
    read_login,
    remove_login,
    resolve,
    write_login,
)

LoginEndpointOption = typer.Option(None, "--endpoint", envvar="HF_ENDPOINT",
                                   help="Server URL (or HF_ENDPOINT; default: the stored login's).")


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _check_token(endpoint: str, token: str) -> dict[str, Any]:
    """Who the token belongs to, asked of the server; one error line and exit 1 when it says no."""
    try:
        response = httpx.get(f"{endpoint}/api/whoami-v2", headers={"Authorization": f"Bearer {token}"},
                             timeout=30)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {endpoint}: {exc.__class__.__name__}: {exc}; nothing stored") from None
    if response.status_code in (401, 403):
        reason = response.headers.get("x-error-message") or "the token is not valid"
        raise fail(f"{endpoint} refused the token ({reason}); nothing stored")
    try:
        whoami = response.json() if response.is_success else None
    except ValueError:
        whoami = None
    if not isinstance(whoami, dict) or not isinstance(whoami.get("name"), str):
        raise fail(f"{endpoint} answered /api/whoami-v2 with {response.status_code}, not a releasehub "
                   "(Hugging Face Hub API) server's account; nothing stored")
    return whoami


def _read_token(token: Optional[str], stdin: bool) -> str:
    if stdin or token == "-":
        value = sys.stdin.readline().strip()
    elif token is not None:
        value = token.strip()
    else:
        value = typer.prompt("Token", hide_input=True).strip()
    if not value:
        raise fail("no token given; nothing stored")
    return value


def login(
    endpoint: Optional[str] = LoginEndpointOption,
    token: Optional[str] = typer.Option(
        None, "--token", help="The token to store (`-`: read it from stdin; default: a hidden prompt). "
                              "HF_TOKEN is not read: say which token to store."),
    stdin: bool = typer.Option(False, "--stdin", help="Read the token from one line of standard input."),
) -> None:
    """Check a token against the server and store endpoint and token for every later command."""
    try:
        stored = read_login()
    except LoginFileError:
        stored = None  # replaced by this login
    if not endpoint:
        if stored is None:
            raise fail("no server: pass --endpoint URL or set HF_ENDPOINT")
        endpoint = stored.endpoint
    try:
        endpoint = normalise_endpoint(endpoint)
    except (httpx.InvalidURL, ValueError) as exc:
        raise fail(f"not a server URL: {endpoint!r} ({exc})") from None
    if not endpoint.startswith(("http://", "https://")):
        raise fail(f"not a server URL: {endpoint!r} (give http://HOST:PORT or https://HOST)")
    secret = _read_token(token, stdin)
    whoami = _check_token(endpoint, secret)
    try:
        path = write_login(endpoint, secret, whoami["name"])
    except OSError as exc:
        raise fail(f"cannot store the login in {config_path()}: {exc.strerror or exc}") from None
    _say(f"signed in to {endpoint} as {whoami['name']}")
    _say(f"stored in {path} (mode 0600); `releasehub logout` removes it")
    if os.environ.get("HF_TOKEN") or os.environ.get("HF_ENDPOINT"):
        _say("note: HF_ENDPOINT/HF_TOKEN are set in this shell and take precedence over the stored login")


def logout() -> None:
    """Remove the stored login (the token itself stays valid on the server: revoke it there)."""
    removed = remove_login()
    if removed is None:
        _say(f"not signed in (no {config_path()})")
        return
    where = f" of {removed.endpoint}" if removed.endpoint else ""
    _say(f"signed out{where}: removed {removed.path}")


def whoami(
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="Server URL (default: HF_ENDPOINT, "
                                                                     "else the stored login's)."),
    token: Optional[str] = typer.Option(None, "--token", help="Token (default: HF_TOKEN, else the stored "
                                                              "login's)."),
) -> None:
    """Print who you are on which server, and where the endpoint and token came from (flag, env, stored)."""
    # The options have no envvar so that a flag and the environment can be told apart here.
    endpoint_source = "--endpoint" if endpoint else "HF_ENDPOINT" if os.environ.get("HF_ENDPOINT") else ""
    token_source = "--token" if token else "HF_TOKEN" if os.environ.get("HF_TOKEN") else ""
    try:
        resolved = resolve(endpoint or os.environ.get("HF_ENDPOINT"), token or os.environ.get("HF_TOKEN"))
    except LoginFileError as exc:
        raise fail(str(exc)) from None
    if not resolved.endpoint:
        raise fail(f"not signed in: {FIX_ENDPOINT}")
    if not resolved.token:
        raise fail(missing_token_message(resolved))
    stored_from = f"stored login {resolved.stored.path}" if resolved.stored else "stored login"
    with client(resolved.endpoint, resolved.token) as api:
        me = api.json("GET", "/api/whoami-v2")
    role = (me.get("auth", {}).get("accessToken") or {}).get("role", "")
    _say(f"user: {me['name']}" + (" (server admin)" if me.get("isAdmin") else ""))
    _say(f"endpoint: {resolved.endpoint} (from {endpoint_source or stored_from})")
    _say(f"token: {role or 'valid'} (from {token_source or stored_from})")
    orgs = [o["name"] for o in me.get("orgs", [])]
    if orgs:
        _say(f"orgs: {', '.join(orgs)}")


def register(app: typer.Typer) -> None:
    """Add login, logout and whoami to the top-level app."""
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("whoami")(whoami)
