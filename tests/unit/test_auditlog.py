"""The hash-chained audit log on SQLite and PostgreSQL: appends, tampering, concurrency, export."""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from releasehub.auditlog import DownloadRecorder, EventData, export, record, record_many, summarise_downloads, verify
from releasehub.cli.main import app
from releasehub.db import Database

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'audit.db'}")
        database.upgrade()
        yield database
        database.dispose()
        return
    name = f"audit_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    database = Database(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    database.upgrade()
    yield database
    database.dispose()
    with admin.connect() as c:
        c.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


def fill(db: Database, n: int = 6) -> None:
    with db.session() as s:
        for i in range(n):
            record(s, "access.requested", actor=f"u{i}", repo="lab/m", details={"i": i, "tier": "researcher"})


def tamper(db: Database, sql: str) -> None:
    with db.engine.begin() as c:
        c.execute(sa.text(sql))


def test_chain_verifies(db: Database) -> None:
    fill(db)
    with db.session() as s:
        report = verify(s)
    assert report.ok and report.checked == 6


@pytest.mark.parametrize("sql,seq,needle", [
    ("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3", 3, "was changed"),
    ("UPDATE audit_events SET bytes = 5 WHERE seq = 2", 2, "was changed"),
    ("UPDATE audit_events SET repo = 'x/y' WHERE seq = 6", 6, "was changed"),
    ("DELETE FROM audit_events WHERE seq = 4", 4, "is missing"),
    ("DELETE FROM audit_events WHERE seq >= 5", 5, "were deleted"),
])
def test_tampering_is_detected(db: Database, sql: str, seq: int, needle: str) -> None:
    fill(db)
    tamper(db, sql)
    with db.session() as s:
        report = verify(s)
    assert not report.ok and report.first_bad_seq == seq and needle in (report.problem or "")


def test_rewritten_event_with_recomputed_hash_breaks_the_next_link(db: Database) -> None:
    fill(db)
    from releasehub.auditlog.log import event_hash

    with db.session() as s:
        row = s.execute(sa.text("SELECT seq, at, prev_hash FROM audit_events WHERE seq = 2")).one()
    at = row.at if isinstance(row.at, datetime) else datetime.fromisoformat(str(row.at))
    forged = event_hash(2, at, "access.requested", "mallory", "lab/m", None, None, None, None, {"i": 1, "tier": "researcher"}, row.prev_hash)
    tamper(db, f"UPDATE audit_events SET actor = 'mallory', hash = '{forged}' WHERE seq = 2")
    with db.session() as s:
        report = verify(s)
    assert not report.ok and report.first_bad_seq == 3


def test_rolled_back_events_leave_no_trace(db: Database) -> None:
    fill(db, 2)
    with pytest.raises(RuntimeError), db.session() as s:
        record(s, "policy.changed", actor="x", repo="lab/m")
        raise RuntimeError("the change failed")
    with db.session() as s:
        report = verify(s)
    assert report.ok and report.checked == 2


def test_concurrent_appenders_make_one_chain(db: Database) -> None:
    # Several engines imitate several server replicas on one database.
    others = [Database(db.engine.url.render_as_string(hide_password=False)) for _ in range(3)]
    errors: list[BaseException] = []

    def work(database: Database, k: int) -> None:
        try:
            for i in range(10):
                with database.session() as s:
                    record(s, "file.downloaded", actor=f"w{k}", repo="lab/m", path=f"f{i}", bytes=i)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d, k)) for k, d in enumerate(others)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for d in others:
        d.dispose()
    assert not errors
    with db.session() as s:
        report = verify(s)
    assert report.ok and report.checked == 30


def test_download_recorder_batches(db: Database) -> None:
    recorder = DownloadRecorder(db, flush_interval=0.05)
    for i in range(120):
        recorder.add(EventData("file.downloaded", actor="ada", repo="lab/m", revision="a" * 40, path="w.safetensors",
                               bytes=10, at=datetime.now(timezone.utc)))
    recorder.close()
    with db.session() as s:
        assert verify(s).checked == 120
        rows = summarise_downloads(s, "lab/m")
    assert len(rows) == 1 and rows[0].downloads == 120 and rows[0].bytes == 1200 and rows[0].actors == {"ada"}


def test_verify_on_a_live_log_while_another_replica_appends(db: Database) -> None:
    # A busy server keeps appending while `audit verify` walks: events after the head it read
    # first are left for the next run, so a healthy log never reads as tampered.
    fill(db, 3)
    other = Database(db.engine.url.render_as_string(hide_password=False))
    stop = threading.Event()
    appended: list[int] = []

    def append() -> None:
        while not stop.is_set() and len(appended) < 400:
            with other.session() as s:
                record(s, "file.downloaded", actor="w", repo="lab/m", path=f"f{len(appended)}", bytes=1)
            appended.append(1)

    writer = threading.Thread(target=append)
    writer.start()
    try:
        reports = []
        for _ in range(6):
            with db.session() as s:
                reports.append(verify(s, batch=7))
    finally:
        stop.set()
        writer.join()
        other.dispose()
    assert appended, "the writer appended nothing while verify ran"
    assert all(r.ok for r in reports), [r.problem for r in reports if not r.ok]
    with db.session() as s:
        final = verify(s)
    assert final.ok and final.checked == 3 + len(appended)


def _download(path: str = "w.safetensors", size: int = 10) -> EventData:
    return EventData("file.downloaded", actor="ada", repo="lab/m", revision="a" * 40, path=path, bytes=size,
                     at=datetime.now(timezone.utc))


def test_download_recorder_sets_a_refused_event_aside_and_keeps_the_rest(db: Database) -> None:
    recorder = DownloadRecorder(db, flush_interval=3600, split_after=2)
    poison = _download(size=2**70)  # too big for a 64-bit integer column on either database
    recorder.add(_download())
    recorder.add(poison)
    recorder.add(_download())
    for _ in range(2):  # two failed rounds of the whole batch...
        with pytest.raises(Exception):
            recorder.flush()
    recorder.flush()  # ...then one at a time: the good events are written, the bad one set aside
    recorder.add(_download())
    recorder.close()
    assert recorder.rejected == [poison]
    with db.session() as s:
        assert verify(s).checked == 3
        assert summarise_downloads(s, "lab/m")[0].downloads == 3


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_download_recorder_survives_a_path_too_long_for_the_column(db: Database) -> None:
    recorder = DownloadRecorder(db, flush_interval=3600, split_after=1)
    long_path = _download(path="d/" * 600 + "w.safetensors")
    recorder.add(long_path)
    recorder.add(_download())
    with pytest.raises(Exception):
        recorder.flush()
    recorder.flush()
    recorder.close()
    assert recorder.rejected == [long_path]
    with db.session() as s:
        assert verify(s).checked == 1


def test_download_recorder_add_never_blocks(db: Database) -> None:
    recorder = DownloadRecorder(db, flush_interval=3600, max_queue=2)
    started = datetime.now(timezone.utc)
    for _ in range(5):
        recorder.add(_download())
    assert recorder.dropped == 3
    assert (datetime.now(timezone.utc) - started).total_seconds() < 5  # not the old 30 s wait per event
    recorder.close()
    with db.session() as s:
        assert verify(s).checked == 2


def test_export_filters_and_formats(db: Database) -> None:
    old = datetime.now(timezone.utc) - timedelta(days=10)
    with db.session() as s:
        record_many(s, [EventData("access.requested", actor="a", repo="lab/m", at=old),
                        EventData("file.downloaded", actor="a", repo="lab/m", path="x", bytes=3,
                                  details={"range": "bytes=0-2"}),
                        EventData("file.downloaded", actor="b", repo="other/m", path="y")])
    with db.session() as s:
        out = io.StringIO()
        assert export(s, out, repo="lab/m", since=old + timedelta(days=1)) == 1
        row = json.loads(out.getvalue())
        assert (row["action"], row["details"], row["bytes"]) == ("file.downloaded", {"range": "bytes=0-2"}, 3)
        out = io.StringIO()
        assert export(s, out, actions=["file.downloaded"], fmt="csv") == 2
        parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
        assert [r["repo"] for r in parsed] == ["lab/m", "other/m"]
        assert json.loads(parsed[0]["details"]) == {"range": "bytes=0-2"}


def test_cli_verify_and_export(db: Database) -> None:
    fill(db, 3)
    url = db.engine.url.render_as_string(hide_password=False)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify", "--database-url", url])
    assert ok.exit_code == 0 and "intact: 3 events" in ok.output
    # `audit export` goes through the server now: tests/functional/test_admin_gateway.py.
    tamper(db, "UPDATE audit_events SET action = 'access.accepted' WHERE seq = 2")
    bad = runner.invoke(app, ["audit", "verify", "--database-url", url])
    assert bad.exit_code == 1 and "event 2 was changed" in bad.output
