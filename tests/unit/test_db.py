"""`Database.data_version`: the number a hot path may cache reads under."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from sqlalchemy import text

from releasehub.db import Database, upgrade


def test_data_version_moves_with_every_commit_elsewhere_and_only_then(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    db = Database(f"sqlite:///{path}")
    try:
        with db.engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        first = db.data_version()
        assert first is not None
        with db.engine.connect() as conn:  # reads change nothing
            conn.execute(text("SELECT count(*) FROM t")).scalar()
        assert db.data_version() == first

        with db.engine.begin() as conn:  # a commit on this process's own pool
            conn.execute(text("INSERT INTO t VALUES (1)"))
        second = db.data_version()
        assert second != first
        assert db.data_version() == second

        with db.engine.connect() as conn:  # a transaction rolled back commits nothing
            conn.execute(text("INSERT INTO t VALUES (2)"))
            conn.rollback()
        assert db.data_version() == second

        # Another process (the operator CLI, another worker) committing.
        code = f"import sqlite3; c = sqlite3.connect({str(path)!r}); c.execute('INSERT INTO t VALUES (3)'); c.commit()"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        assert db.data_version() != second
        with sqlite3.connect(path) as other:
            assert other.execute("SELECT count(*) FROM t").fetchone()[0] == 2
    finally:
        db.dispose()


@pytest.fixture()
def empty_postgres(postgres_url: str) -> Iterator[str]:
    """An empty database of this test's own (the session's shared one is migrated by its servers)."""
    import psycopg

    name = f"{postgres_url.rsplit('/', 1)[1]}_counter"
    admin = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def migrated_postgres(empty_postgres: str) -> str:
    upgrade(empty_postgres)
    return empty_postgres


@pytest.mark.postgres
def test_no_data_version_on_unmigrated_postgresql(empty_postgres: str) -> None:
    """A database without the counter row (not migrated) has no such number: read every time."""
    db = Database(empty_postgres)
    try:
        assert db.data_version() is None
    finally:
        db.dispose()


@pytest.mark.postgres
def test_postgresql_change_counter_moves_with_commits_to_watched_tables(migrated_postgres: str) -> None:
    """The counter a replica's caches hold under: a committed change to a watched table moves
    it, read blocking and from the event loop alike; a read or a rollback does not; a connection
    the server dropped answers None once (read every time), then the next call reconnects."""
    import psycopg

    db = Database(migrated_postgres)
    other = psycopg.connect(migrated_postgres.replace("+psycopg", ""), autocommit=True)
    try:
        first = db.data_version()
        assert first is not None
        assert asyncio.run(db.data_version_async()) == first
        other.execute("SELECT count(*) FROM tokens")
        assert db.data_version() == first

        other.execute("INSERT INTO users (name, email, is_admin, created_at) "
                      "VALUES ('counter-probe', 'probe@example.org', false, now())")
        second = db.data_version()
        assert second is not None and second > first

        async def from_the_loop() -> tuple[int | None, int | None]:
            before = await db.data_version_async()
            other.execute("UPDATE users SET email = 'probe2@example.org' WHERE name = 'counter-probe'")
            return before, await db.data_version_async()

        before, after = asyncio.run(from_the_loop())
        assert before == second and after is not None and after > second

        async def joins_the_next_read() -> tuple[list[int | None], int | None]:
            # Calls made while a read is in flight wait for the next one, so a call made after a
            # commit sees it, however many calls share one round trip.
            await db.data_version_async()  # this loop's connection, open
            early = [asyncio.ensure_future(db.data_version_async()) for _ in range(20)]
            await asyncio.sleep(0)
            other.execute("UPDATE users SET email = 'probe3@example.org' WHERE name = 'counter-probe'")
            late = await db.data_version_async()
            return list(await asyncio.gather(*early)), late

        early, late = asyncio.run(joins_the_next_read())
        assert all(value is not None and value >= after for value in early)
        assert late is not None and late > after
        after = late

        with other.transaction():
            other.execute("DELETE FROM users WHERE name = 'counter-probe'")
            raise_rollback = psycopg.Rollback()
            raise raise_rollback
        assert db.data_version() == after

        other.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert db.data_version() is None
        assert db.data_version() == after
    finally:
        other.close()
        db.dispose()
