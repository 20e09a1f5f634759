"""`releasehub access` (request, status, terms, review) and `releasehub policy` (show, set).

Both talk to a running server over its HTTP API with the user's token, so a requester and a
releaser use them from their own machines, as they use `hf`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table

from releasehub.cli.common import console, err_console, parse_instant
from releasehub.cli.remote import EndpointOption, TokenOption, check_repo_id, remote

access_app = typer.Typer(help="Request access to a gated release, see where you stand, review requests.",
                         no_args_is_help=True)
review_app = typer.Typer(help="Review access requests of a repo you release (write role).", no_args_is_help=True)
access_app.add_typer(review_app, name="review")
policy_app = typer.Typer(help="Show or set a repo's release policy (visibility, gate, tiers, stages).",
                         no_args_is_help=True)


def _fields(values: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            err_console.print(f"[red]error:[/red] --field takes NAME=VALUE, got {item!r}.")
            raise typer.Exit(2)
        fields[name.strip()] = True if value.lower() in ("true", "yes") else value
    return fields


def _show_terms(terms: dict[str, Any]) -> None:
    lic = terms["license"]
    title = terms.get("heading") or f"Access to {terms['repo']}"
    console.print(Panel(Markdown(terms.get("prompt") or ""), title=title))
    table = Table("license term", "value", title=f"license: {lic.get('name') or lic.get('id') or 'none'}")
    structured = lic.get("terms") or {}
    for key, value in structured.items():
        if isinstance(value, list):
            value = "; ".join(value) or "none"
        table.add_row(key.replace("_", " "), "—" if value is None else str(value))
    table.add_row("version", str(lic.get("version")))
    table.add_row("text sha256", str(lic.get("sha256")))
    if lic.get("link"):
        table.add_row("link", lic["link"])
    console.print(table)
    if terms.get("fields"):
        form = Table("field", "type", "required", title="form (pass each with --field NAME=VALUE)")
        for f in terms["fields"]:
            kind = f["type"] + (f" ({', '.join(f['options'])})" if f.get("options") else "")
            form.add_row(f["label"], kind, "yes" if f.get("required", True) else "no")
        console.print(form)
    if terms.get("eligibility"):
        console.print("eligibility rules: " + json.dumps(terms["eligibility"]))
    if terms.get("tiers"):
        tiers = Table("tier", "opens", "review", "grant days", title="tiers (pass --tier NAME)")
        for t in terms["tiers"]:
            tiers.add_row(t["name"], ", ".join(t["components"]), str(t["review"]), str(t.get("grant_days") or "—"))
        console.print(tiers)


@access_app.command("terms")
def terms_cmd(
    repo_id: str = typer.Argument(..., help="NAMESPACE/NAME"),
    show_text: bool = typer.Option(False, "--text", help="Print the full license text too."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Show what you accept when you request access: prompt, license terms, form, rules."""
    check_repo_id(repo_id)
    with remote(endpoint, token, need_token=False) as api:
        terms = api.json("GET", f"/api/models/{repo_id}/access-terms")
    _show_terms(terms)
    if show_text:
        console.print(terms["license"]["text"], markup=False, highlight=False)


@access_app.command("request")
def request_cmd(
    repo_id: str = typer.Argument(..., help="NAMESPACE/NAME"),
    field: list[str] = typer.Option([], "--field", "-f", help="A form field, NAME=VALUE (repeat)."),
    tier: Optional[str] = typer.Option(None, "--tier", help="The access tier you ask for."),
    accept_license: bool = typer.Option(False, "--accept-license",
                                        help="Accept the license text and prompt shown by `access terms`."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Request access to a gated or tiered release."""
    check_repo_id(repo_id)
    fields = _fields(field)
    with remote(endpoint, token) as api:
        terms = api.json("GET", f"/api/models/{repo_id}/access-terms")
        if not accept_license:
            _show_terms(terms)
            err_console.print("[red]error:[/red] read the terms above and pass --accept-license to accept them.")
            raise typer.Exit(1)
        result = api.json("POST", f"/api/models/{repo_id}/access-request", json={
            "fields": fields, "tier": tier, "acceptLicense": True,
            "licenseSha256": terms["license"]["sha256"],
        })
    state = result["state"]
    tier_text = f" ({result['tier']} tier)" if result.get("tier") else ""
    if state == "accepted":
        until = f" until {result['expiresAt']}" if result.get("expiresAt") else ""
        console.print(f"[green]access granted[/green] to {repo_id}{tier_text}{until}")
    else:
        console.print(f"request sent: {repo_id}{tier_text} is [yellow]pending review[/yellow] by its owners "
                      f"(request {result['requestId']}); check with `releasehub access status {repo_id}`")


@access_app.command("status")
def status_cmd(
    repo_id: str = typer.Argument(..., help="NAMESPACE/NAME"),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Where you stand: your request, its state, and whether you may download now."""
    check_repo_id(repo_id)
    with remote(endpoint, token) as api:
        me = api.json("GET", f"/api/models/{repo_id}/access-request")
    table = Table("", "", title=f"access to {repo_id}", show_header=False)
    table.add_row("state", me["state"])
    table.add_row("can download", "yes" if me["canDownload"] else "no")
    if me.get("tier"):
        table.add_row("tier", me["tier"])
    request = me.get("request") or {}
    for label, key in (("requested", "timestamp"), ("decided", "decidedAt"), ("expires", "expiresAt"),
                       ("reason", "reason")):
        if request.get(key):
            table.add_row(label, str(request[key]))
    if not me["canDownload"]:
        table.add_row("message", me["message"])
    console.print(table)


# ------------------------------------------------------------------ review


def _when(value: Optional[str]) -> Optional[str]:
    """`30d`, `12h` or an ISO date -> an ISO instant in the future (an expiry)."""
    instant = parse_instant(value, ago=False)
    return None if instant is None else instant.isoformat()


@review_app.command("list")
def review_list(
    repo_id: str = typer.Argument(..., help="NAMESPACE/NAME"),
    status: str = typer.Option("pending", "--status", help="pending, accepted or rejected."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per request, a line each."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """List access requests: a table on a wide terminal, one block per request on a narrow one."""
    check_repo_id(repo_id)
    with remote(endpoint, token) as api:
        rows = api.json("GET", f"/api/models/{repo_id}/user-access-request/{status}")
    if as_json:
        for r in rows:
            print(json.dumps(r))  # for scripts: plain lines, no colour or wrapping
        return
    if not rows:
        console.print(f"no {status} requests on {repo_id}")
        return
    if console.width >= WIDE:
        console.print(_review_table(rows, f"{status} requests on {repo_id}"))
        return
    for r in rows:  # narrow: a header line per request, then its form answers, indented
        console.print(_review_head(r), markup=False, soft_wrap=True)
        for label, answer in (r.get("fields") or {}).items():
            console.print(f"    {label}: {answer}", markup=False, soft_wrap=True)


WIDE = 120  # the eight columns of the table need about this many


def _review_head(r: dict[str, Any]) -> str:
    user = r.get("user") or {}
    email = (user.get("email") or "") + (" (verified)" if user.get("emailVerified") else "")
    parts = [user.get("user", "?"), email, r["state"], f"tier {r['tier']}" if r.get("tier") else "",
             f"requested {r['timestamp'][:16].replace('T', ' ')}", r.get("country") or "",
             f"reason: {r['reason']}" if r.get("reason") else "",
             f"expires {r['expiresAt'][:16].replace('T', ' ')}" if r.get("expiresAt") else ""]
    return "  ".join(part for part in parts if part)


def _review_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table("user", "email", "state", "tier", "requested", "country", "fields", "reason / expiry", title=title)
    for r in rows:
        user = r.get("user") or {}
        email = (user.get("email") or "") + (" ✓" if user.get("emailVerified") else "")
        extra = r.get("reason") or r.get("expiresAt") or ""
        fields = "\n".join(f"{k}: {v}" for k, v in (r.get("fields") or {}).items())
        table.add_row(user.get("user", "?"), email, r["state"], r.get("tier") or "",
                      r["timestamp"][:16].replace("T", " "), r.get("country") or "", fields, extra)
    return table


def _handle(repo_id: str, user: str, status: str, endpoint: Optional[str], token: Optional[str],
            **extra: Any) -> dict[str, Any]:
    check_repo_id(repo_id)
    body = {"user": user, "status": status, **{k: v for k, v in extra.items() if v is not None}}
    with remote(endpoint, token) as api:
        return api.json("POST", f"/api/models/{repo_id}/user-access-request/handle", json=body)  # type: ignore[no-any-return]


@review_app.command("accept")
def review_accept(
    repo_id: str, user: str,
    tier: Optional[str] = typer.Option(None, "--tier", help="Grant this tier instead of the one requested."),
    expires: Optional[str] = typer.Option(None, "--expires", help="Expiry: 30d, 12h or a date."),
    endpoint: Optional[str] = EndpointOption, token: Optional[str] = TokenOption,
) -> None:
    """Accept USER's request."""
    result = _handle(repo_id, user, "accepted", endpoint, token, tier=tier, expiresAt=_when(expires))
    console.print(f"accepted {user} on {repo_id}" + (f" until {result['expiresAt']}" if result.get("expiresAt") else ""))


@review_app.command("reject")
def review_reject(
    repo_id: str, user: str,
    reason: str = typer.Option(..., "--reason", help="Shown to the requester, who may ask again."),
    endpoint: Optional[str] = EndpointOption, token: Optional[str] = TokenOption,
) -> None:
    """Reject USER's request (or revoke their access) with a reason."""
    result = _handle(repo_id, user, "rejected", endpoint, token, rejectionReason=reason)
    console.print(f"{'revoked' if result['state'] == 'revoked' else 'rejected'} {user} on {repo_id}")


@review_app.command("revoke")
def review_revoke(
    repo_id: str, user: str,
    reason: str = typer.Option(..., "--reason", help="Shown to the user."),
    endpoint: Optional[str] = EndpointOption, token: Optional[str] = TokenOption,
) -> None:
    """Revoke USER's access (their grant becomes a rejection with this reason)."""
    _handle(repo_id, user, "rejected", endpoint, token, rejectionReason=reason)
    console.print(f"revoked {user} on {repo_id}")


@review_app.command("cancel")
def review_cancel(
    repo_id: str, user: str, endpoint: Optional[str] = EndpointOption, token: Optional[str] = TokenOption,
) -> None:
    """Move USER's request back to pending (they lose access until accepted again)."""
    _handle(repo_id, user, "pending", endpoint, token)
    console.print(f"{user}'s request on {repo_id} is pending again")


@review_app.command("grant")
def review_grant(
    repo_id: str, user: str,
    tier: Optional[str] = typer.Option(None, "--tier"),
    expires: Optional[str] = typer.Option(None, "--expires", help="Expiry: 30d, 12h or a date."),
    endpoint: Optional[str] = EndpointOption, token: Optional[str] = TokenOption,
) -> None:
    """Grant USER access without a request."""
    check_repo_id(repo_id)
    with remote(endpoint, token) as api:
        api.json("POST", f"/api/models/{repo_id}/user-access-request/grant",
                 json={"user": user, "tier": tier, "expiresAt": _when(expires)})
    console.print(f"granted {user} access to {repo_id}")


# ------------------------------------------------------------------ policy


@policy_app.command("show")
def policy_show(
    repo_id: str = typer.Argument(..., help="NAMESPACE/NAME"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
    endpoint: Optional[str] = EndpointOption, token: Optional[str] = TokenOption,
) -> None:
    """Print the repo's release policy (write role)."""
    check_repo_id(repo_id)
    with remote(endpoint, token) as api:
        doc = api.json("GET", f"/api/models/{repo_id}/policy")
    text = json.dumps(doc, indent=2) if as_json else yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    console.print(text, markup=False, highlight=False)


@policy_app.command("set")
def policy_set(
    repo_id: str = typer.Argument(..., help="NAMESPACE/NAME"),
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="The policy, YAML or JSON."),
    endpoint: Optional[str] = EndpointOption, token: Optional[str] = TokenOption,
) -> None:
    """Replace the repo's release policy with FILE (admin role). Times may be +30d, +12h or now."""
    check_repo_id(repo_id)
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        err_console.print(f"[red]error:[/red] {file} is not valid YAML or JSON: {exc}")
        raise typer.Exit(2) from None
    if not isinstance(doc, dict):
        err_console.print(f"[red]error:[/red] {file} must hold a mapping (keys such as gated, tiers, stages).")
        raise typer.Exit(2)
    doc = json.loads(json.dumps(doc, default=str))  # YAML dates → strings the server reads
    with remote(endpoint, token) as api:
        result = api.json("PUT", f"/api/models/{repo_id}/policy", json=doc)
    console.print(f"policy of {repo_id} set: visibility {result['visibility']}, gated {result['gated']}, "
                  f"{len(result.get('tiers') or [])} tiers, {len(result.get('stages') or [])} stages")
