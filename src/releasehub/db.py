"""The metadata database: one SQLAlchemy engine, sessions, and migrations.

SQLite (the embedded default) and PostgreSQL run the same models and the same Alembic
migrations. SQLite runs in WAL mode so that readers never wait for a commit in progress.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from sqlalchemy import BigInteger, DateTime, Engine, Integer, MetaData, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ChangeCounter(Base):
    """PostgreSQL's answer to SQLite's `data_version`: one row whose `n` grows with every committed
    change to what the hot paths cache (tokens, users, memberships, orgs, repos, refs, access
    requests, Xet files, the gateway's keys and engines), by deferred triggers that the migration
    creates. Read before the rows it guards, so that rows cached under it are never older than it."""

    __tablename__ = "change_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on both backends (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """An aware datetime; a naive one is UTC (SQLite, and Core queries over a Connection, give naive values)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _sqlite_pragmas(dbapi_connection: object, connection_record: object) -> None:
    # journal_mode=WAL is a property of the database file, set once in make_engine.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A pool as large as the worker-thread pool, so that connections are reused rather
        # than opened and closed under load.
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=40, max_overflow=10
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        # Reads may run on the event loop itself only where they cannot wait on the network
        # or on a writer: SQLite in WAL mode.
        self.inline_reads = self.engine.dialect.name == "sqlite"
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()

    def data_version(self, connection: Connection | None = None) -> int | None:
        """A number that changes whenever a change the hot paths cache is committed (by this
        process's pool, the CLI, another worker or another replica), so that they may cache what
        they read while the number stays the same. SQLite: `PRAGMA data_version`, read on a
        connection of its own (it changes with any commit of another connection). PostgreSQL: the
        `change_counter` row (one indexed read; on `connection` when given, the one that then reads
        the rows). None where there is no such number (in-memory SQLite, a database whose counter
        row is missing): read every time."""
        if not self.inline_reads:
            if connection is not None:
                return connection.execute(_COUNTER).scalar()  # type: ignore[no-any-return]
            with self.engine.connect() as own:
                return own.execute(_COUNTER).scalar()  # type: ignore[no-any-return]
        with self._watch_lock:
            if self._watch is None:
                path = self.engine.url.database
                if not path or path == ":memory:":
                    return None
                self._watch = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            return self._watch.execute("PRAGMA data_version").fetchone()[0]

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back on any exception."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def upgrade(self) -> None:
        upgrade(self.url)

    def dispose(self) -> None:
        with self._watch_lock:
            if self._watch is not None:
                self._watch.close()
                self._watch = None
        self.engine.dispose()


def _alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


_COUNTER = text("SELECT n FROM change_counter WHERE id = 1")


class VersionedCache:
    """Rows read from the database, kept while `Database.data_version()` stays the same: a change
    committed anywhere clears them, so whatever they decide holds from the next request on every
    replica. Only rows: what depends on the time (expiry, staged releases) is judged every call."""

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._version: int | None = None
        self._rows: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()

    def get(self, version: int | None, key: tuple[Any, ...]) -> Any:
        if version is None:
            return None
        with self._lock:
            if version != self._version:
                self._rows.clear()
                self._version = version
            return self._rows.get(key)

    def put(self, version: int | None, key: tuple[Any, ...], rows: Sequence[Any] | Any) -> None:
        if version is None:
            return
        with self._lock:
            if self._version == version:  # read after the version was: at least as new as it
                if len(self._rows) >= self.MAX_ENTRIES:
                    self._rows.clear()
                self._rows[key] = rows


MIGRATION_LOCK = 0x72656C68  # "relh": the advisory lock replicas take around migrations


def upgrade(url: str) -> None:
    """Bring the schema to the newest migration (idempotent). On PostgreSQL, under an advisory
    lock: replicas starting together migrate one after the other, the later ones finding nothing
    to do."""
    from alembic import command

    if not url.startswith("postgresql"):
        command.upgrade(_alembic_config(url), "head")
        return
    engine = migration_engine(url)
    try:
        with engine.connect() as lock:
            lock.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
            try:
                command.upgrade(_alembic_config(url), "head")
            finally:
                lock.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
    finally:
        engine.dispose()


def migration_engine(url: str) -> Engine:
    """A short-lived engine for migrations (no pool kept around afterwards)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, poolclass=NullPool)
