"""`releasehub audit`: verify the chain, export events, report downloads (reads the database)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from releasehub.auditlog import export, summarise_downloads, verify
from releasehub.auditlog.log import count
from releasehub.cli.common import (
    DatabaseUrlOption,
    DataDirOption,
    console,
    database,
    err_console,
    friendly_errors,
    load_settings,
    parse_instant,
)

audit_app = typer.Typer(help="The audit trail: verify its hash chain, export events, report downloads.",
                        no_args_is_help=True)


def parse_when(value: Optional[str]) -> Optional[datetime]:
    """`7d`, `24h`, `30m` (ago), an ISO date or datetime -> an aware UTC instant."""
    return parse_instant(value, ago=True)


@audit_app.command("verify")
def verify_cmd(data_dir: Optional[Path] = DataDirOption, database_url: Optional[str] = DatabaseUrlOption) -> None:
    """Check every event's hash and link; exit 1 and name the first bad event when tampered."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        total = count(session)
        with Progress(TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), console=err_console,
                      transient=True) as progress:
            task = progress.add_task("verify", total=total)
            report = verify(session, on_progress=lambda n: progress.update(task, completed=n))
    if report.ok:
        console.print(f"audit log intact: {report.checked} events, head {report.head_hash[:16]}")
        return
    err_console.print(f"[red]audit log tampered:[/red] {report.problem} "
                      f"({report.checked} events verified before it)")
    raise typer.Exit(1)


@audit_app.command("export")
def export_cmd(
    repo: Optional[str] = typer.Option(None, "--repo", help="Only events of this repo (NAMESPACE/NAME)."),
    since: Optional[str] = typer.Option(None, "--since", help="From: 7d, 24h or an ISO date."),
    until: Optional[str] = typer.Option(None, "--until", help="Until (exclusive): 7d, 24h or an ISO date."),
    action: list[str] = typer.Option([], "--action", help="Only these actions, e.g. file.downloaded (repeat)."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv."),
    output: str = typer.Option("-", "--output", "-o", help="File to write, or - for stdout."),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Write events as JSON Lines or CSV: a releaser's access report per file and revision."""
    if fmt not in ("jsonl", "csv"):
        err_console.print(f"[red]error:[/red] --format must be jsonl or csv, not {fmt!r}.")
        raise typer.Exit(2)
    start, end = parse_when(since), parse_when(until)
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        if output == "-":
            n = export(session, sys.stdout, repo=repo, since=start, until=end, actions=action or None, fmt=fmt)
        else:
            with open(output, "w", encoding="utf-8", newline="") as out:
                n = export(session, out, repo=repo, since=start, until=end, actions=action or None, fmt=fmt)
            err_console.print(f"wrote {n} events to {output}")


@audit_app.command("report")
def report_cmd(
    repo: str = typer.Option(..., "--repo", help="NAMESPACE/NAME"),
    since: Optional[str] = typer.Option(None, "--since", help="From: 7d, 24h or an ISO date."),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Downloads per revision and file: count, bytes, distinct downloaders."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        rows = summarise_downloads(session, repo, parse_when(since))
    table = Table("revision", "file", "downloads", "downloaders", "bytes", title=f"downloads of {repo}")
    for r in rows:
        table.add_row((r.revision or "")[:12], r.path or "", str(r.downloads), str(len(r.actors)), f"{r.bytes:,}")
    console.print(table)
