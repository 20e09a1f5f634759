"""The metadata database: one SQLAlchemy engine, sessions, and migrations.

SQLite (the embedded default) and PostgreSQL run the same models and the same Alembic
migrations. SQLite runs in WAL mode so that readers never wait for a commit in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from sqlalchemy import BigInteger, DateTime, Engine, Integer, MetaData, create_engine, event
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


_COUNTER_SQL = "SELECT n FROM change_counter WHERE id = 1"


class _LoopReads:
    """One event loop's counter connection and the calls waiting for its next read."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.waiting: asyncio.Future[int | None] | None = None
        self.busy = False

    def finish(self) -> None:
        """Close the connection without its event loop (which may be gone)."""
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.pgconn.finish()
            self.conn = None


class _CounterReader:
    """Reads PostgreSQL's `change_counter` on connections of its own, in autocommit (each read is
    its own snapshot, so it sees every change committed before it began) and outside the pool
    (no checkout, no pre-ping, no rollback on return): one round trip. One blocking connection for
    worker threads, one asynchronous connection per event loop for the request path, so that a
    cache hit never leaves the loop. A connection that fails is dropped and the answer is None
    (callers then read the rows themselves); the next call connects again."""

    def __init__(self, url: Any) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._sync: Any = None
        self._sync_lock = threading.Lock()
        # Per event loop: its connection and waiting calls. Connections of closed loops are
        # finished (at the protocol level, which needs no loop) when the next call sees them.
        self._loops: dict[asyncio.AbstractEventLoop, _LoopReads] = {}
        self._loops_lock = threading.Lock()

    def read(self) -> int | None:
        import psycopg

        with self._sync_lock:
            try:
                if self._sync is None or self._sync.closed:
                    self._sync = psycopg.connect(self._conninfo, autocommit=True, prepare_threshold=0)
                row = self._sync.execute(_COUNTER_SQL).fetchone()
            except psycopg.Error:
                self._close_sync()
                return None
            return None if row is None else int(row[0])

    async def read_async(self) -> int | None:
        """One query answers every call that arrived before it was sent (a call arriving while a
        query is in flight waits for the next one, which sees every commit made before that call
        began): under load, one round trip serves a batch of requests."""
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            with self._loops_lock:
                for other in [other for other in self._loops if other.is_closed()]:
                    self._loops.pop(other).finish()
                state = self._loops.setdefault(loop, _LoopReads())
        if state.waiting is None:
            state.waiting = loop.create_future()
            if not state.busy:
                state.busy = True
                loop.create_task(self._drain(state))
        return await asyncio.shield(state.waiting)  # type: ignore[no-any-return]

    async def _drain(self, state: _LoopReads) -> None:
        import psycopg

        batch: asyncio.Future[int | None] | None = None
        try:
            while state.waiting is not None:
                batch, state.waiting = state.waiting, None
                value: int | None = None
                try:
                    if state.conn is None or state.conn.closed:
                        state.conn = await psycopg.AsyncConnection.connect(
                            self._conninfo, autocommit=True, prepare_threshold=0)
                    cursor = await state.conn.execute(_COUNTER_SQL)
                    row = await cursor.fetchone()
                    value = None if row is None else int(row[0])
                except psycopg.Error:
                    state.finish()
                if not batch.done():
                    batch.set_result(value)
                batch = None
        finally:
            state.busy = False
            for pending in (batch, state.waiting):
                if pending is not None and not pending.done():
                    pending.set_result(None)
            state.waiting = None

    def _close_sync(self) -> None:
        if self._sync is not None:
            with contextlib.suppress(Exception):
                self._sync.close()
            self._sync = None

    def close(self) -> None:
        with self._sync_lock:
            self._close_sync()
        with self._loops_lock:
            for state in self._loops.values():
                state.finish()
            self._loops.clear()


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
        self._counter = None if self.inline_reads else _CounterReader(self.engine.url)

    def data_version(self) -> int | None:
        """A number that changes whenever a change the hot paths cache is committed (by this
        process's pool, the CLI, another worker or another replica), so that they may cache what
        they read while the number stays the same. SQLite: `PRAGMA data_version`, read on a
        connection of its own (it changes with any commit of another connection). PostgreSQL: the
        `change_counter` row, read on a connection of its own (`_CounterReader`). None where there
        is no such number (in-memory SQLite, a database whose counter row is missing or cannot
        be read now): read every time."""
        if self._counter is not None:
            return self._counter.read()
        with self._watch_lock:
            if self._watch is None:
                path = self.engine.url.database
                if not path or path == ":memory:":
                    return None
                self._watch = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            return self._watch.execute("PRAGMA data_version").fetchone()[0]

    async def data_version_async(self) -> int | None:
        """`data_version` for the event loop: on PostgreSQL one round trip on the loop's own
        connection, with no worker thread."""
        if self._counter is not None:
            return await self._counter.read_async()
        return self.data_version()

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
        if self._counter is not None:
            self._counter.close()
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
