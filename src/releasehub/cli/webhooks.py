"""`releasehub webhooks` (add, list, remove, deliveries): a repo's event receivers, over the HTTP API.

They need the repo's admin role. Each delivery is signed; see `releasehub.webhooks.dispatcher` for
how a receiver verifies it.
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from releasehub.cli.common import console
from releasehub.cli.remote import EndpointOption, TokenOption, check_repo_id, remote

webhooks_app = typer.Typer(
    help="Send a repo's events (access requests, decisions, revocations, new revisions) to URLs, "
         "signed with HMAC-SHA256.",
    no_args_is_help=True,
)

RepoArgument = typer.Argument(..., help="NAMESPACE/NAME")
WebhookIdArgument = typer.Argument(..., help="The webhook's id (see `releasehub webhooks list`).")


@webhooks_app.command("add")
def add(
    repo_id: str = RepoArgument,
    url: str = typer.Argument(..., help="The http(s) URL that receives the events."),
    event: list[str] = typer.Option([], "--event", "-e",
                                    help="Subscribe to this event only (repeat); default: all repo events (audit.checkpoint, for server admins, must be named)."),
    secret: Optional[str] = typer.Option(None, "--secret",
                                         help="Signing secret, 16 to 128 characters (default: generated)."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Register URL to receive REPO's events; prints the signing secret, once."""
    check_repo_id(repo_id)
    with remote(endpoint, token) as api:
        hook = api.json("POST", f"/api/models/{repo_id}/webhooks",
                        json={"url": url, "events": event or None, "secret": secret})
    console.print(f"added webhook {hook['id']} on {repo_id}: {hook['url']}", markup=False, soft_wrap=True)
    console.print(f"events: {', '.join(hook['events'])}", markup=False, soft_wrap=True)
    console.print(f"signing secret (shown only now; keep it with the receiver): {hook['secret']}",
                  markup=False, soft_wrap=True)


@webhooks_app.command("list")
def list_cmd(repo_id: str = RepoArgument, endpoint: Optional[str] = EndpointOption,
             token: Optional[str] = TokenOption) -> None:
    """List REPO's webhooks (without their secrets)."""
    check_repo_id(repo_id)
    with remote(endpoint, token) as api:
        hooks = api.json("GET", f"/api/models/{repo_id}/webhooks")
    if not hooks:
        console.print(f"{repo_id} has no webhooks; add one with `releasehub webhooks add {repo_id} URL`",
                      markup=False, soft_wrap=True)
        return
    table = Table("id", "url", "events", "active", "created by", "created", title=f"webhooks of {repo_id}")
    for h in hooks:
        # Text(): what users typed is shown as it is, never read as rich markup.
        table.add_row(str(h["id"]), Text(h["url"]), ", ".join(h["events"]), "yes" if h["active"] else "no",
                      Text(h["createdBy"]), h["createdAt"])
    console.print(table)


@webhooks_app.command("remove")
def remove(repo_id: str = RepoArgument, webhook_id: int = WebhookIdArgument,
           endpoint: Optional[str] = EndpointOption, token: Optional[str] = TokenOption) -> None:
    """Remove a webhook, with its queued and past deliveries."""
    check_repo_id(repo_id)
    with remote(endpoint, token) as api:
        api.json("DELETE", f"/api/models/{repo_id}/webhooks/{webhook_id}")
    console.print(f"removed webhook {webhook_id} from {repo_id}", markup=False)


@webhooks_app.command("deliveries")
def deliveries(
    repo_id: str = RepoArgument,
    webhook_id: int = WebhookIdArgument,
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="How many of the newest to show."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """A webhook's recent deliveries, newest first: status, attempts, answer, last error."""
    check_repo_id(repo_id)
    with remote(endpoint, token) as api:
        rows = api.json("GET", f"/api/models/{repo_id}/webhooks/{webhook_id}/deliveries",
                        params={"limit": limit})
    if not rows:
        console.print(f"webhook {webhook_id} has no deliveries yet", markup=False)
        return
    table = Table("delivery", "event", "status", "attempts", "answer", "last error", "created",
                  title=f"deliveries of webhook {webhook_id}")
    for d in rows:
        status = d["status"]
        if status == "pending" and d.get("nextAttemptAt"):
            status = f"pending (next {d['nextAttemptAt']})"
        table.add_row(d["id"], d["event"], status, str(d["attempts"]),
                      str(d["responseStatus"]) if d["responseStatus"] is not None else "",
                      Text(d["lastError"] or ""), d["createdAt"])
    console.print(table)
