"""`releasehub audit`: verify the chain, sign checkpoints, export events, report downloads.

`verify` and `checkpoint` read the database directly (`--data-dir`, `--database-url`, as the server
finds it; they print which), never through the server: an auditor checks what is stored. They never
create a database: a path that holds none is an error naming it (`common.existing_database`).
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, TextIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from releasehub.cli.common import (
    DatabaseUrlOption,
    DataDirOption,
    console,
    err_console,
    existing_database,
    friendly_errors,
    parse_instant,
    show_data_dir,
)
from releasehub.cli.remote import EndpointOption, Remote, RemoteError, TokenOption, check_repo_id, remote
from releasehub.settings import Settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

audit_app = typer.Typer(help="The audit trail: verify its hash chain, sign checkpoints of its head, export "
                             "events, report downloads.", no_args_is_help=True)

KeyFileOption = typer.Option(None, "--key-file",
                             help="Signing key (default: $RELEASEHUB_AUDIT_KEY_FILE or audit-signing.key in "
                                  "the data dir).")


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def _public_key(settings: Settings, public_key: Optional[Path]) -> "Ed25519PublicKey":
    from releasehub.auditlog import checkpoint as checkpoints

    if public_key is not None:
        return checkpoints.load_public_key(public_key)
    key_file = settings.audit_key_path
    for candidate in (checkpoints.public_key_path(key_file), key_file):
        if candidate.is_file():
            return checkpoints.load_public_key(candidate)
    raise checkpoints.CheckpointError(
        f"no public key to check the checkpoint's signature: neither {checkpoints.public_key_path(key_file)} "
        f"nor {key_file} exists; pass --public-key FILE (the key printed by `releasehub audit public-key`)")


def parse_when(value: Optional[str]) -> Optional[datetime]:
    """`7d`, `24h`, `30m` (ago), an ISO date or datetime -> an aware UTC instant."""
    return parse_instant(value, ago=True)


@audit_app.command("verify")
def verify_cmd(
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", help="A checkpoint file (`audit checkpoint`, or an audit.checkpoint webhook's "
                                   "data): fail unless the log still holds its head."),
    public_key: Optional[Path] = typer.Option(
        None, "--public-key", help="Public key that signed the checkpoint (default: the .pub next to the "
                                   "signing key)."),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
    key_file: Optional[Path] = KeyFileOption,
) -> None:
    """Check every event's hash and link (and a signed checkpoint); exit 1 naming what is wrong."""
    from releasehub.auditlog import checkpoint as checkpoints
    from releasehub.auditlog import verify
    from releasehub.auditlog.log import count

    settings = Settings.from_env(data_dir=data_dir, database_url=database_url,
                                 audit_key_file=str(key_file) if key_file is not None else None)
    show_data_dir(settings, data_dir)
    anchor = None
    if checkpoint is not None:
        try:
            anchor = checkpoints.Checkpoint.read(checkpoint)
            checkpoints.check_signature(anchor, _public_key(settings, public_key))
        except checkpoints.CheckpointError as exc:
            err_console.print(f"[red]checkpoint refused:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None
    with friendly_errors(), existing_database(settings) as db, db.session() as session:
        total = count(session)
        with Progress(TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), console=err_console,
                      transient=True) as progress:
            task = progress.add_task("verify", total=total)
            report = verify(session, on_progress=lambda n: progress.update(task, completed=n))
        anchored = checkpoints.check_against_log(session, anchor) if anchor is not None else None
    if not report.ok:
        err_console.print(f"[red]audit log tampered:[/red] {report.problem} "
                          f"({report.checked} events verified before it)", highlight=False)
    if anchored is not None:
        err_console.print(f"[red]audit log does not hold the checkpoint:[/red] {anchored}", highlight=False)
    if not report.ok or anchored is not None:
        raise typer.Exit(1)
    console.print(f"audit log intact: {report.checked} events, head {report.head_hash[:16]}")
    if anchor is not None:
        console.print(f"checkpoint held: seq {anchor.seq} ({anchor.at}), signed by {anchor.key_id}")


@audit_app.command("checkpoint")
def checkpoint_cmd(
    output: str = typer.Option("-", "--output", "-o", help="File to write, or - for stdout."),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
    key_file: Optional[Path] = KeyFileOption,
) -> None:
    """Sign the chain's head (seq, hash, time, key id); keep the file away from the database."""
    from releasehub.auditlog import checkpoint as checkpoints

    settings = Settings.from_env(data_dir=data_dir, database_url=database_url,
                                 audit_key_file=str(key_file) if key_file is not None else None)
    show_data_dir(settings, data_dir)
    with friendly_errors(), existing_database(settings) as db:
        try:
            key = checkpoints.SigningKey.load_or_create(settings.audit_key_path)
            with db.session() as session:
                signed = checkpoints.create(session, key)
        except checkpoints.CheckpointError as exc:
            raise _fail(str(exc)) from None
    if output == "-":
        sys.stdout.write(signed.to_json())
    else:
        _write_new(Path(output), signed.to_json())
        err_console.print(f"wrote the checkpoint of seq {signed.seq} (head {signed.hash[:16]}, "
                          f"key {signed.key_id}) to {output}", highlight=False)


def _write_new(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _fail(f"cannot write {path}: {exc.strerror or exc}") from None


@audit_app.command("public-key")
def public_key_cmd(
    data_dir: Optional[Path] = DataDirOption,
    key_file: Optional[Path] = KeyFileOption,
) -> None:
    """Print the checkpoint signing key's public key (PEM), creating the key pair on first use."""
    from releasehub.auditlog import checkpoint as checkpoints

    settings = Settings.from_env(data_dir=data_dir,
                                 audit_key_file=str(key_file) if key_file is not None else None)
    try:
        key = checkpoints.SigningKey.load_or_create(settings.audit_key_path)
    except (checkpoints.CheckpointError, OSError) as exc:
        raise _fail(str(exc)) from None
    sys.stdout.write(checkpoints.public_pem(key.public_key))
    err_console.print(f"key id {key.key_id}; private key {settings.audit_key_path}, public key "
                      f"{checkpoints.public_key_path(settings.audit_key_path)}", highlight=False)


@audit_app.command("export")
def export_cmd(
    repo: Optional[str] = typer.Option(None, "--repo", help="Only events of this repo (NAMESPACE/NAME; its "
                                                            "admins). Without it: the whole log (server admins)."),
    since: Optional[str] = typer.Option(None, "--since", help="From: 7d, 24h or an ISO date."),
    until: Optional[str] = typer.Option(None, "--until", help="Until (exclusive): 7d, 24h or an ISO date."),
    action: list[str] = typer.Option([], "--action", help="Only these actions, e.g. file.downloaded (repeat)."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv."),
    output: str = typer.Option("-", "--output", "-o", help="File to write, or - for stdout."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Write events as JSON Lines or CSV, from the server: a releaser's access report per file and revision."""
    if fmt not in ("jsonl", "csv"):
        err_console.print(f"[red]error:[/red] --format must be jsonl or csv, not {fmt!r}.")
        raise typer.Exit(2)
    if repo is not None:
        check_repo_id(repo)
    start, end = parse_when(since), parse_when(until)
    params: dict[str, Any] = {"format": fmt, "action": action}
    if start is not None:
        params["since"] = start.isoformat()
    if end is not None:
        params["until"] = end.isoformat()
    url = f"/api/models/{repo}/audit" if repo else "/api/audit/export"
    with remote(endpoint, token) as api, _streamed(api, url, params) as chunks:
        if output == "-":
            n = _copy_events(chunks, sys.stdout, fmt)
        else:
            # Opened once the server has said yes: a refusal leaves no empty file behind.
            with open(output, "w", encoding="utf-8", newline="") as out:
                n = _copy_events(chunks, out, fmt)
            err_console.print(f"wrote {n} events to {output}", markup=False, highlight=False)


@contextlib.contextmanager
def _streamed(api: Remote, url: str, params: dict[str, Any]) -> Iterator[Iterator[str]]:
    """The text of a streamed answer, once its status says it is not an error."""
    with api.client.stream("GET", url, params=params) as response:
        if not response.is_success:
            response.read()
            message = response.headers.get("x-error-message")
            try:
                message = response.json().get("error") or message
            except (ValueError, AttributeError):
                pass
            raise RemoteError(message or f"GET {url} answered {response.status_code}")
        yield response.iter_text()


def _copy_events(chunks: Iterator[str], out: TextIO, fmt: str) -> int:
    """Writes the export as it arrives; returns how many events it held (CSV: rows after the header)."""

    def lines() -> Iterator[str]:
        pending = ""
        for chunk in chunks:
            out.write(chunk)
            *complete, pending = (pending + chunk).split("\n")
            for line in complete:
                yield line + "\n"
        if pending:
            yield pending

    if fmt == "csv":
        # csv.reader, not a line count: a quoted cell may hold a line break.
        return max(0, sum(1 for _ in csv.reader(lines())) - 1)
    return sum(1 for line in lines() if line.strip())


@audit_app.command("report")
def report_cmd(
    repo: str = typer.Option(..., "--repo", help="NAMESPACE/NAME (its admins)."),
    since: Optional[str] = typer.Option(None, "--since", help="From: 7d, 24h or an ISO date."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Downloads per revision and file, from the server: count, bytes, distinct downloaders."""
    check_repo_id(repo)
    start = parse_when(since)
    with remote(endpoint, token) as api:
        rows = api.json("GET", f"/api/models/{repo}/audit/downloads",
                        params={"since": start.isoformat()} if start is not None else None)
    table = Table("revision", "file", "downloads", "downloaders", "bytes", title=f"downloads of {repo}")
    for r in rows:
        table.add_row((r["revision"] or "")[:12], Text(r["path"] or ""), str(r["downloads"]), str(r["downloaders"]),
                      f"{r['bytes']:,}")
    console.print(table)
