"""What CLI commands share: settings from flags and environment, a console, error output."""

from __future__ import annotations

import contextlib
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape

from releasehub.errors import ReleasehubError
from releasehub.settings import Settings

if TYPE_CHECKING:  # the database layer is imported by the commands that use it, not by every command
    from releasehub.db import Database

console = Console()
# Errors are one line each, however narrow the terminal (or pipe): never hard-wrapped.
err_console = Console(stderr=True, soft_wrap=True)

DataDirOption = typer.Option(
    None, "--data-dir",
    help="Data directory (default: $RELEASEHUB_DATA_DIR, else $XDG_DATA_HOME/releasehub or "
         "~/.local/share/releasehub, whatever the working directory).")
DatabaseUrlOption = typer.Option(None, "--database-url", help="Database URL (default: SQLite in the data dir).")


def load_settings(data_dir: Optional[Path] = None, database_url: Optional[str] = None) -> Settings:
    return Settings.from_env(data_dir=data_dir, database_url=database_url)


def show_data_dir(settings: Settings, data_dir: Optional[Path] = None) -> None:
    """Say which data directory (and database) a command uses, and why: the default is no longer a guess.

    On stderr, so that what a command writes to stdout (a checkpoint, a table) stays clean.
    `data_dir` is the --data-dir flag as given, to name where the directory came from.
    """
    if data_dir is not None:
        source = "--data-dir"
    elif os.environ.get("RELEASEHUB_DATA_DIR"):
        source = "RELEASEHUB_DATA_DIR"
    else:
        source = "default; --data-dir or RELEASEHUB_DATA_DIR to change"
    err_console.print(f"data dir: {settings.data_dir.resolve()} ({source})", markup=False, highlight=False)
    if settings.database_url:
        import sqlalchemy as sa

        shown = sa.engine.make_url(settings.database_url).render_as_string(hide_password=True)
        err_console.print(f"database: {shown}", markup=False, highlight=False)


class NoDatabase(ReleasehubError):
    """The command needs the server's existing database and there is none where it looked (CLI only)."""


def _no_database(where: str, detail: str = "") -> NoDatabase:
    return NoDatabase(f"no releasehub database at {where}{detail}: start the server once or run "
                      "`releasehub db upgrade` (or pass --data-dir or --database-url where the server keeps "
                      "its data)")


def check_database(url: str) -> None:
    """Raise NoDatabase unless `url` holds a releasehub schema; creates nothing (no file, no folder, no table).

    For the commands that must touch the database directly but may not make one: `audit verify`,
    `audit checkpoint`, creating the first admin. An empty database they had just created would
    "verify" as intact, or hold an admin no server ever sees.
    """
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if not path or path == ":memory:" or not Path(path).is_file():
            raise _no_database(str(Path(path).resolve()) if path and path != ":memory:" else shown)
    # A bare engine, not Database: Database's engine makes the SQLite file's folder and sets WAL mode.
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            has_schema = sa.inspect(connection).has_table("alembic_version")
    except sa.exc.SQLAlchemyError as exc:
        raise _no_database(shown, f" (cannot open it: {exc.__class__.__name__}: "
                                  f"{str(exc).splitlines()[0]})") from None
    finally:
        engine.dispose()
    if not has_schema:
        raise _no_database(shown, " (it holds no releasehub tables)")


@contextlib.contextmanager
def database(settings: Settings, *, create: bool = False) -> Iterator[Database]:
    """The server's database, migrated to this version.

    `create=True` (`serve`, `db upgrade`): made when missing. Otherwise it must already exist:
    NoDatabase (one line, exit 1 under friendly_errors) and nothing is created.
    """
    if create:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    else:
        try:
            check_database(settings.resolved_database_url)
        except NoDatabase as exc:
            err_console.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
            raise typer.Exit(1) from None
    from releasehub.db import Database

    db = Database(settings.resolved_database_url)
    try:
        db.upgrade()
        yield db
    finally:
        db.dispose()


def existing_database(settings: Settings) -> contextlib.AbstractContextManager[Database]:
    """The server's database, never a new one: for commands that only read it, and the first admin."""
    return database(settings, create=False)


@contextlib.contextmanager
def friendly_errors() -> Iterator[None]:
    """Domain errors end the command with their message and exit code 1, not a traceback."""
    try:
        yield
    except ReleasehubError as exc:
        err_console.print(f"[red]error:[/red] {escape(exc.message)}")
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
