"""An append-only, hash-chained event log.

Each event's `hash` is the sha256 (hex) of the UTF-8 bytes of

    json.dumps([seq, at, action, actor, repo, revision, path, bytes, ip, details, prev_hash],
               sort_keys=True, separators=(",", ":"), ensure_ascii=False)

where `at` is the ISO-8601 UTC instant with microseconds (`2026-11-23T10:00:00.000000+00:00`),
`details` a JSON object or null, and `prev_hash` the previous event's hash (64 zeros for the
first). `seq` counts from 1 without gaps. The one-row table `audit_head` holds the last seq and
hash; appenders lock it (`SELECT ... FOR UPDATE`), so several server processes on one
PostgreSQL database extend one chain. An auditor can re-implement `verify` from this paragraph.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Generic, Iterator, Sequence, TextIO, TypeVar

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from releasehub.auditlog.models import AuditEvent, AuditHead
from releasehub.db import Database, utcnow

log = logging.getLogger("releasehub.audit")
T = TypeVar("T")
GENESIS = "0" * 64
FIELDS = ("seq", "at", "action", "actor", "repo", "revision", "path", "bytes", "ip", "details", "prev_hash", "hash")


@dataclass(frozen=True)
class EventData:
    action: str
    actor: str | None = None
    repo: str | None = None
    revision: str | None = None
    path: str | None = None
    bytes: int | None = None
    ip: str | None = None
    details: dict[str, Any] | None = None
    at: datetime | None = None


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc).isoformat(timespec="microseconds")


def event_hash(seq: int, at: datetime, action: str, actor: str | None, repo: str | None, revision: str | None,
               path: str | None, size: int | None, ip: str | None, details: dict[str, Any] | None,
               prev_hash: str) -> str:
    payload = [seq, _iso(at), action, actor, repo, revision, path, size, ip, details, prev_hash]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _lock_head(session: Session) -> AuditHead:
    # A write first: on SQLite it takes the database's write lock before the head is read (a
    # plain SELECT would let two appenders read the same head); on PostgreSQL the row lock of
    # FOR UPDATE serialises appenders across replicas.
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(AuditHead).values(id=1, seq=0, hash=GENESIS).on_conflict_do_nothing(index_elements=["id"]))
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
    head = session.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update()
                          .execution_options(populate_existing=True))
    assert head is not None
    return head


def record_many(session: Session, events: Sequence[EventData]) -> int:
    """Appends events in the caller's transaction (they commit or roll back with it)."""
    if not events:
        return 0
    head = _lock_head(session)
    seq, prev = head.seq, head.hash
    rows = []
    for e in events:
        seq += 1
        at = (e.at or utcnow()).astimezone(timezone.utc)
        # JSON round trip: the stored details are exactly what the hash covered.
        details = json.loads(json.dumps(e.details, default=str)) if e.details is not None else None
        digest = event_hash(seq, at, e.action, e.actor, e.repo, e.revision, e.path, e.bytes, e.ip, details, prev)
        rows.append({"seq": seq, "at": at, "action": e.action, "actor": e.actor, "repo": e.repo,
                     "revision": e.revision, "path": e.path, "bytes": e.bytes, "ip": e.ip, "details": details,
                     "prev_hash": prev, "hash": digest})
        prev = digest
    head.seq, head.hash = seq, prev
    session.execute(insert(AuditEvent), rows)  # one executemany, not an ORM object per event
    session.flush()
    return len(events)


def record(session: Session, action: str, *, actor: str | None = None, repo: str | None = None,
           revision: str | None = None, path: str | None = None, bytes: int | None = None, ip: str | None = None,
           details: dict[str, Any] | None = None, at: datetime | None = None) -> None:
    record_many(session, [EventData(action, actor, repo, revision, path, bytes, ip, details, at)])


class BatchRecorder(Generic[T]):
    """Items from the hot path, written by a thread in batches, one transaction each.

    `write(session, items)` turns a batch into rows (audit events, counters). A batch the
    database refuses is retried; after `split_after` failed rounds it is written one item at a
    time, so one item the database will never take (a value too long for its column) is
    logged and set aside (`rejected`) instead of holding back every later one. When every item
    of the batch fails alone too, the database is down: all of them are kept for the next
    round. `add` never blocks the caller (an async route): past `max_queue` waiting items it
    drops the item and logs it, which only happens after a long outage.
    """

    def __init__(self, database: Database, write: Callable[[Session, list[T]], object], *, name: str,
                 flush_interval: float = 0.5, max_batch: int = 500, max_queue: int = 100_000,
                 split_after: int = 3) -> None:
        self._db = database
        self._write = write
        self._name = name
        self._interval = flush_interval
        self._max_batch = max_batch
        self._split_after = split_after
        self._queue: queue.Queue[T] = queue.Queue(maxsize=max_queue)
        self._pending: list[T] = []
        self._failures = 0
        self.rejected: list[T] = []     # items the database refused on their own (kept for inspection)
        self.dropped = 0                # items refused by a full queue
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def add(self, item: T) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            log.error("%s: item dropped, %d are waiting for the database: %r", self._name, self._queue.qsize(), item)

    def _write_batch(self, items: list[T]) -> None:
        with self._db.session() as session:
            self._write(session, items)

    def _write_alone(self) -> None:
        """Write the pending items one by one; set aside those the database refuses alone."""
        kept: list[T] = []
        written = 0
        for item in self._pending:
            try:
                self._write_batch([item])
                written += 1
            except Exception:  # noqa: BLE001 - judged below: one bad item, or the database down
                kept.append(item)
        if kept and not written:
            self._pending = kept
            raise RuntimeError(f"{self._name}: the database refused all {len(kept)} items; retrying them later")
        for item in kept:
            log.error("%s: item set aside, the database refuses it: %r", self._name, item)
        self.rejected.extend(kept)
        self._pending = []
        self._failures = 0

    def flush(self) -> None:
        """Writes everything queued so far; returns when it is committed (or set aside)."""
        with self._lock:
            while True:
                try:
                    while len(self._pending) < self._max_batch:
                        self._pending.append(self._queue.get_nowait())
                except queue.Empty:
                    pass
                if not self._pending:
                    return
                if self._failures >= self._split_after:
                    self._write_alone()
                    continue
                try:
                    self._write_batch(self._pending)
                except Exception:
                    self._failures += 1
                    raise
                self._pending = []
                self._failures = 0

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - kept for the next round, never dropped
                log.exception("%s: writing failed; retrying", self._name)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for _ in range(self._split_after + 1):
            try:
                self.flush()
                return
            except Exception:  # noqa: BLE001
                log.exception("%s: writing the last items failed", self._name)


class DownloadRecorder(BatchRecorder[EventData]):
    """Download events for the hot path: `add` queues, a thread appends them to the audit log."""

    def __init__(self, database: Database, **options: Any) -> None:
        super().__init__(database, record_many, name="audit-downloads", **options)


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


def verify(session: Session, *, batch: int = 5000, on_progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Walks the chain in order: detects edited, deleted, inserted or reordered events and a cut tail.

    The head is read first and the walk stops at its seq: events appended while the walk runs
    (a live server keeps writing) belong to a later chain state and are left for the next run,
    so a healthy, busy log verifies and the walk always ends.
    """
    head = session.get(AuditHead, 1)
    head_seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
    session.expunge_all()
    expected_seq, prev = 1, GENESIS
    checked = 0
    last_seq = 0
    while True:
        rows = list(session.scalars(select(AuditEvent).where(AuditEvent.seq >= expected_seq,
                                                             AuditEvent.seq <= head_seq)
                                    .order_by(AuditEvent.seq).limit(batch)))
        if not rows:
            break
        for e in rows:
            if e.seq != expected_seq:
                return VerifyReport(False, checked, prev, expected_seq,
                                    f"event {expected_seq} is missing: the chain jumps from {expected_seq - 1} to {e.seq}")
            if e.prev_hash != prev:
                return VerifyReport(False, checked, prev, e.seq,
                                    f"event {e.seq} does not follow event {e.seq - 1}: its prev_hash is not that "
                                    "event's hash (an event was replaced, removed or reordered)")
            digest = event_hash(e.seq, e.at, e.action, e.actor, e.repo, e.revision, e.path, e.bytes, e.ip,
                                e.details, e.prev_hash)
            if digest != e.hash:
                return VerifyReport(False, checked, prev, e.seq,
                                    f"event {e.seq} was changed: its stored hash does not match its content")
            prev, last_seq = e.hash, e.seq
            expected_seq += 1
            checked += 1
        if on_progress is not None:
            on_progress(checked)
        session.expunge_all()
    if head_seq != last_seq or head_hash != prev:
        if head_seq > last_seq:
            problem = (f"the last {head_seq - last_seq} events were deleted: the head says seq {head_seq}, "
                       f"the log ends at {last_seq}")
        else:
            problem = f"the head (seq {head_seq}) does not match the last event (seq {last_seq})"
        return VerifyReport(False, checked, prev, last_seq + 1, problem)
    return VerifyReport(True, checked, prev)


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def _select(repo: str | None, since: datetime | None, until: datetime | None, actions: Sequence[str] | None) -> Any:
    query = select(AuditEvent).order_by(AuditEvent.seq)
    if repo:
        query = query.where(AuditEvent.repo == repo)
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
    if actions:
        query = query.where(AuditEvent.action.in_(list(actions)))
    return query


def iter_events(session: Session, *, repo: str | None = None, since: datetime | None = None,
                until: datetime | None = None, actions: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    for e in session.scalars(_select(repo, since, until, actions).execution_options(yield_per=1000)):
        yield {f: (_iso(e.at) if f == "at" else getattr(e, f)) for f in FIELDS}


def export_lines(session: Session, *, repo: str | None = None, since: datetime | None = None,
                 until: datetime | None = None, actions: Sequence[str] | None = None,
                 fmt: str = "jsonl") -> Iterator[str]:
    """The text `export` writes, one line at a time (CSV: the header first), for a streamed answer."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown format {fmt!r}: use jsonl or csv")
    return _lines(session, repo, since, until, actions, fmt)


def _lines(session: Session, repo: str | None, since: datetime | None, until: datetime | None,
           actions: Sequence[str] | None, fmt: str) -> Iterator[str]:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)

    def csv_line(values: Sequence[Any]) -> str:
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    if fmt == "csv":
        yield csv_line(FIELDS)
    for row in iter_events(session, repo=repo, since=since, until=until, actions=actions):
        if fmt == "csv":
            yield csv_line([json.dumps(row[f], sort_keys=True) if f == "details" and row[f] is not None
                            else ("" if row[f] is None else row[f]) for f in FIELDS])
        else:
            yield json.dumps(row, ensure_ascii=False) + "\n"


def export(session: Session, out: TextIO, *, repo: str | None = None, since: datetime | None = None,
           until: datetime | None = None, actions: Sequence[str] | None = None, fmt: str = "jsonl") -> int:
    """Writes matching events in seq order as JSON Lines or CSV; returns how many."""
    n = -1 if fmt == "csv" else 0  # the CSV header is not an event
    for line in export_lines(session, repo=repo, since=since, until=until, actions=actions, fmt=fmt):
        out.write(line)
        n += 1
    return n


@dataclass
class DownloadRow:
    revision: str | None
    path: str | None
    downloads: int = 0
    bytes: int = 0
    actors: set[str] = field(default_factory=set)


def summarise_downloads(session: Session, repo: str, since: datetime | None = None) -> list[DownloadRow]:
    """Downloads per (revision, file): count, bytes and distinct downloaders."""
    rows: dict[tuple[str | None, str | None], DownloadRow] = {}
    for e in iter_events(session, repo=repo, since=since, actions=["file.downloaded"]):
        key = (e["revision"], e["path"])
        row = rows.setdefault(key, DownloadRow(*key))
        row.downloads += 1
        row.bytes += e["bytes"] or 0
        row.actors.add(e["actor"] or "anonymous")
    return sorted(rows.values(), key=lambda r: (-r.downloads, r.path or ""))
