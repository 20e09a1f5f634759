"""What CLI commands that talk to a running server share: the client, options, the stored login, errors.

Every command reaches the server one way: `remote(endpoint, token)`. The endpoint and token come
from `--endpoint`/`--token` (or `HF_ENDPOINT`/`HF_TOKEN`), else from the login `releasehub login`
stored. A stored token is sent only to the endpoint it was stored for: pointing a command at
another server must not hand that server the first one's credentials.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import httpx
import typer
from rich.markup import escape

from releasehub.cli.common import err_console

EndpointOption = typer.Option(None, "--endpoint", envvar="HF_ENDPOINT",
                              help="Server URL (or HF_ENDPOINT; default: the one of `releasehub login`).")
TokenOption = typer.Option(None, "--token", envvar="HF_TOKEN",
                           help="Your token (or HF_TOKEN; default: the one of `releasehub login`).")

FIX_ENDPOINT = "pass --endpoint URL or set HF_ENDPOINT, or run `releasehub login`"
FIX_TOKEN = "pass --token or set HF_TOKEN, or run `releasehub login`"


# ------------------------------------------------------------------ the stored login


def config_path() -> Path:
    """`$RELEASEHUB_CONFIG`, else `$XDG_CONFIG_HOME/releasehub/login.json` or ~/.config/releasehub/login.json."""
    explicit = os.environ.get("RELEASEHUB_CONFIG")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "releasehub" / "login.json"


def normalise_endpoint(endpoint: str) -> str:
    """The form endpoints are stored and compared in: no trailing slash, scheme and host in lower case."""
    url = httpx.URL(endpoint.strip().rstrip("/"))
    return str(url.copy_with(scheme=url.scheme.lower(), host=url.host.lower())).rstrip("/")


@dataclass(frozen=True)
class StoredLogin:
    endpoint: str
    token: str
    user: str
    path: Path


class LoginFileError(Exception):
    pass


def read_login() -> Optional[StoredLogin]:
    """The stored login, or None when there is none; a damaged file is an error naming it."""
    path = config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LoginFileError(f"cannot read the stored login {path}: {exc}; run `releasehub login` again "
                             "or `releasehub logout`") from None
    if not (isinstance(data, dict) and isinstance(data.get("endpoint"), str)
            and isinstance(data.get("token"), str) and data["endpoint"] and data["token"]):
        raise LoginFileError(f"the stored login {path} holds no endpoint and token; run `releasehub login` "
                             "again or `releasehub logout`")
    return StoredLogin(data["endpoint"], data["token"], str(data.get("user") or ""), path)


def write_login(endpoint: str, token: str, user: str) -> Path:
    """Store the login atomically, readable by its owner only (file 0600, a new folder 0700)."""
    path = config_path()
    folder = path.parent
    if not folder.is_dir():
        folder.mkdir(mode=0o700, parents=True)
        os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
    text = json.dumps({"endpoint": endpoint, "token": token, "user": user}, indent=2) + "\n"
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    # Created 0600 from the start (O_EXCL, never an existing file), so the token is never readable by others.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def remove_login() -> Optional[StoredLogin]:
    """Remove the stored login; returns what was there (None when nothing was)."""
    path = config_path()
    try:
        stored = read_login()
    except LoginFileError:
        stored = StoredLogin("", "", "", path)  # damaged: remove it all the same
    if stored is None:
        return None
    path.unlink(missing_ok=True)
    return stored


# ------------------------------------------------------------------ resolution


@dataclass(frozen=True)
class Resolved:
    endpoint: Optional[str]
    token: Optional[str]
    stored: Optional[StoredLogin]
    endpoint_from: str  # "given" or "stored"
    token_from: str  # "given", "stored" or "none"


def resolve(endpoint: Optional[str], token: Optional[str]) -> Resolved:
    """The endpoint and token a command uses: the flag or environment value, else the stored login's.

    The stored token goes with the stored endpoint only: when the endpoint is given and differs,
    no stored token is used (the caller says so if a token is needed).
    """
    stored = read_login()
    if endpoint:
        endpoint_from = "given"
    elif stored is not None:
        endpoint, endpoint_from = stored.endpoint, "stored"
    else:
        endpoint_from = "none"
    if token:
        token_from = "given"
    elif stored is not None and endpoint and same_endpoint(endpoint, stored.endpoint):
        token, token_from = stored.token, "stored"
    else:
        token_from = "none"
    return Resolved(endpoint or None, token or None, stored, endpoint_from, token_from)


def same_endpoint(a: str, b: str) -> bool:
    try:
        return normalise_endpoint(a) == normalise_endpoint(b)
    except (httpx.InvalidURL, ValueError):
        return False


def missing_token_message(resolved: Resolved) -> str:
    if resolved.stored is not None and resolved.endpoint_from == "given":
        return (f"no token for {resolved.endpoint}: the stored login is for {resolved.stored.endpoint} and its "
                f"token is not sent to another server; pass --token or set HF_TOKEN, or run "
                f"`releasehub login --endpoint {resolved.endpoint}`")
    return f"no token: {FIX_TOKEN} (an admin creates one with `releasehub tokens create USER`)"


# ------------------------------------------------------------------ the client


class RemoteError(Exception):
    pass


class Remote:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def call(self, method: str, url: str, *, json: Any = None, params: Any = None,
             ok_statuses: tuple[int, ...] = ()) -> httpx.Response:
        response = self.client.request(method, url, json=json, params=params)
        if response.is_success or response.status_code in ok_statuses:
            return response
        message = response.headers.get("x-error-message")
        try:
            body = response.json()
            message = body.get("error") or message
            hint = body.get("hint")
            if hint:
                message = f"{message} {hint}"
        except (ValueError, AttributeError):
            pass
        raise RemoteError(message or f"{method} {url} answered {response.status_code}")

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        return self.call(method, url, **kwargs).json()


def check_repo_id(repo_id: str) -> str:
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        err_console.print(f"[red]error:[/red] repo must be NAMESPACE/NAME, got {escape(repo_id)!r}.")
        raise typer.Exit(2)
    return repo_id


def fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(1)


@contextlib.contextmanager
def client(endpoint: str, token: Optional[str]) -> Iterator[Remote]:
    """A client for `endpoint`; errors end the command with one line and exit code 1."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=endpoint.rstrip("/"), headers=headers, timeout=60) as http:
            yield Remote(http)
    except RemoteError as exc:
        raise fail(str(exc)) from None
    except httpx.HTTPError as exc:
        raise fail(f"cannot talk to {endpoint}: {exc}") from None


@contextlib.contextmanager
def remote(endpoint: Optional[str], token: Optional[str], *, need_token: bool = True) -> Iterator[Remote]:
    """A client for the server the flags, the environment or the stored login name (in that order)."""
    try:
        resolved = resolve(endpoint, token)
    except LoginFileError as exc:
        raise fail(str(exc)) from None
    if not resolved.endpoint:
        raise fail(f"no server: {FIX_ENDPOINT}.")
    if need_token and not resolved.token:
        raise fail(missing_token_message(resolved) + ".")
    with client(resolved.endpoint, resolved.token) as api:
        yield api
