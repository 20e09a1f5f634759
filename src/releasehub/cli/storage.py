"""`releasehub gc`: remove unreferenced blobs, upload leftovers and unused Xet xorbs, through the server."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.table import Table

from releasehub.cli.common import console, err_console
from releasehub.cli.remote import EndpointOption, TokenOption, remote


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be removed."),
    grace_hours: Optional[float] = typer.Option(
        None, "--grace-hours", min=0,
        help="Keep what was stored less than this many hours ago (default: the server's "
             "RELEASEHUB_GC_GRACE_SECONDS, 24 h). Uploads in progress and blobs of commits being "
             "written are younger than any sensible grace."),
    retention_days: Optional[float] = typer.Option(
        None, "--retention-days", min=0,
        help="Keep Xet xorbs used less than this many days ago, and records of Xet files never committed "
             "younger than this (default: the server's RELEASEHUB_XET_RETENTION_SECONDS, 21 days). The "
             "client caches shards for three weeks and then names their xorbs without sending them."),
    as_json: bool = typer.Option(False, "--json", help="The server's answer as JSON."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Remove blobs that no commit names, and leftovers of interrupted uploads, older than the grace
    period, and Xet xorbs that no file uses, unused for longer than the retention (a server admin's
    write token). The server also runs this every RELEASEHUB_GC_INTERVAL_SECONDS."""
    params: dict[str, Any] = {"dry_run": "true" if dry_run else "false"}
    if grace_hours is not None:
        params["grace_seconds"] = int(grace_hours * 3600)
    if retention_days is not None:
        params["retention_seconds"] = int(retention_days * 86400)
    if not dry_run:
        err_console.print("collecting (the server holds each blob's row while it deletes it) ...")
    with remote(endpoint, token) as api:
        answer = api.json("POST", "/api/admin/gc", params=params)
    if as_json:
        print(json.dumps(answer))
        return
    verb = "would remove" if answer["dry_run"] else "removed"
    table = Table("what", verb, "bytes")
    table.add_row("unreferenced blobs", f"{answer['blobs']:,}", _size(answer["blob_bytes"]))
    table.add_row("stored bytes no row names", f"{answer['orphans']:,}", _size(answer["orphan_bytes"]))
    table.add_row("Xet files never committed", f"{answer['xet_files']:,}", "")
    table.add_row("Xet xorbs no file uses", f"{answer['xorbs']:,}", _size(answer["xorb_bytes"]))
    table.add_row("xorb bytes no row names", f"{answer['xorb_orphans']:,}", _size(answer["xorb_orphan_bytes"]))
    if not answer["dry_run"]:
        table.add_row("upload leftovers", f"{answer['temporary']:,}", "")
    console.print(table)
    kept = [f"{answer['kept_referenced']} kept (named by a commit meanwhile)"] if answer["kept_referenced"] else []
    if answer["kept_xorbs"]:
        kept.append(f"{answer['kept_xorbs']} xorbs kept (used meanwhile)")
    console.print("; ".join([f"grace period: {answer['grace_seconds'] / 3600:g} h",
                             f"Xet retention: {answer['retention_seconds'] / 86400:g} days", *kept]))
