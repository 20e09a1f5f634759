"""`Database.data_version`: the number a hot path may cache reads under (SQLite only)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from releasehub.db import Database


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


def test_no_data_version_on_postgresql(postgres_url: str) -> None:
    """PostgreSQL has no such number: the gateway reads keys and repos on every call there."""
    db = Database(postgres_url)
    try:
        assert db.data_version() is None
    finally:
        db.dispose()
