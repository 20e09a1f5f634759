"""What CLI commands share: settings from flags and environment, a console, error output."""

from __future__ import annotations

import contextlib
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console

from releasehub.db import Database
from releasehub.errors import ReleasehubError
from releasehub.settings import Settings

console = Console()
# Errors are one line each, however narrow the terminal (or pipe): never hard-wrapped.
err_console = Console(stderr=True, soft_wrap=True)

DataDirOption = typer.Option(None, "--data-dir", help="Data directory (default: $RELEASEHUB_DATA_DIR or ./.releasehub).")
DatabaseUrlOption = typer.Option(None, "--database-url", help="Database URL (default: SQLite in the data dir).")


def load_settings(data_dir: Optional[Path] = None, database_url: Optional[str] = None) -> Settings:
    return Settings.from_env(data_dir=data_dir, database_url=database_url)


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[Database]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    try:
        db.upgrade()
        yield db
    finally:
        db.dispose()


@contextlib.contextmanager
def friendly_errors() -> Iterator[None]:
    """Domain errors end the command with their message and exit code 1, not a traceback."""
    try:
        yield
    except ReleasehubError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_instant(value: Optional[str], *, ago: bool) -> Optional[datetime]:
    """`30d`, `12h`, `45m` (before now when `ago`, after it otherwise) or an ISO date/time -> aware UTC.

    A bad value prints what to give and exits with status 2, like a Typer usage error.
    """
    if value is None:
        return None
    text = value.strip()
    m = re.fullmatch(r"(\d{1,6})([dhm])", text)
    if m:
        delta = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        now = datetime.now(timezone.utc)
        return now - delta if ago else now + delta
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        err_console.print(f"[red]error:[/red] cannot read {value!r}: give 30d, 12h, 45m or a date such as 2027-01-01.")
        raise typer.Exit(2) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
