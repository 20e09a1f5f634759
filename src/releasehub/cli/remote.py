"""What CLI commands that talk to a running server share: the client, options, error output."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional

import httpx
import typer

from releasehub.cli.common import err_console

EndpointOption = typer.Option(None, "--endpoint", envvar="HF_ENDPOINT", help="Server URL (or HF_ENDPOINT).")
TokenOption = typer.Option(None, "--token", envvar="HF_TOKEN", help="Your token (or HF_TOKEN).")


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
        except ValueError:
            pass
        raise RemoteError(message or f"{method} {url} answered {response.status_code}")

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        return self.call(method, url, **kwargs).json()


def check_repo_id(repo_id: str) -> str:
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        err_console.print(f"[red]error:[/red] repo must be NAMESPACE/NAME, got {repo_id!r}.")
        raise typer.Exit(2)
    return repo_id


@contextlib.contextmanager
def remote(endpoint: Optional[str], token: Optional[str], *, need_token: bool = True) -> Iterator[Remote]:
    """A client for the server; errors end the command with one line and exit code 1."""
    if not endpoint:
        err_console.print("[red]error:[/red] no server: pass --endpoint URL or set HF_ENDPOINT.")
        raise typer.Exit(2)
    if need_token and not token:
        err_console.print("[red]error:[/red] no token: pass --token or set HF_TOKEN "
                          "(create one with `releasehub tokens create USER`).")
        raise typer.Exit(2)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=endpoint.rstrip("/"), headers=headers, timeout=60) as client:
            yield Remote(client)
    except RemoteError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        err_console.print(f"[red]error:[/red] cannot talk to {endpoint}: {exc}")
        raise typer.Exit(1) from None
