"""The collector: remove blobs no commit names, and the leftovers of uploads, after a grace period.

What it may remove:
- a blob whose row no commit references and that was last stored (or named by a commit in
  progress) longer ago than the grace period: an upload never committed, or a file whose every
  commit went with its repo;
- bytes in the store with no row at all (a commit whose inline files were written and which
  then failed), older than the grace period;
- temporary files and multipart uploads older than the grace period.
Xet xorbs are kept (the client deduplicates against them for weeks); their files' blobs follow
the rule above.

Why a commit never loses a blob to it: the collector deletes bytes only inside a transaction that
holds the blob's row (it deletes the row first, which locks it on PostgreSQL and takes the write
lock on SQLite) and has just seen it old and unreferenced. Every writer records the row before it
publishes bytes or checks that they are there (`repos.insert_blob_rows`, `repos.touch_blob`), so
it either waits for the collector and then finds no bytes (and says to upload again), or makes
the row young first and the collector leaves it. A commit that names the blob while the
collector holds the row fails its foreign key check rather than pointing at nothing; the
collector's own delete fails on the foreign key when a commit got there first.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError

from releasehub.db import utcnow
from releasehub.repos.models import Blob, CommitFile, UploadClaim
from releasehub.services import Services

log = logging.getLogger("releasehub.gc")
BATCH = 500


@dataclass
class Collection:
    """What one run removed (or, with dry_run, would remove)."""

    dry_run: bool
    grace_seconds: int
    blobs: int = 0
    blob_bytes: int = 0
    orphans: int = 0
    orphan_bytes: int = 0
    temporary: int = 0
    kept_referenced: int = 0  # candidates a commit named while the collector looked
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, "grace_seconds": self.grace_seconds, "blobs": self.blobs,
                "blob_bytes": self.blob_bytes, "orphans": self.orphans, "orphan_bytes": self.orphan_bytes,
                "temporary": self.temporary, "kept_referenced": self.kept_referenced,
                "removed": self.removed[:1000]}


def _unreferenced_old(cutoff: datetime):  # type: ignore[no-untyped-def]
    return (~exists().where(CommitFile.sha256 == Blob.sha256)) & (
        func.coalesce(Blob.stored_at, Blob.created_at) < cutoff)


def collect(services: Services, grace_seconds: int | None = None, *, dry_run: bool = False,
            now: datetime | None = None) -> Collection:
    grace = services.settings.gc_grace_seconds if grace_seconds is None else grace_seconds
    if grace < 0:
        raise ValueError("The grace period cannot be negative.")
    cutoff = (now or utcnow()) - timedelta(seconds=grace)
    result = Collection(dry_run=dry_run, grace_seconds=grace)
    store = services.store
    if not dry_run:
        result.temporary = store.sweep_temporary(grace)
    with services.db.session() as session:
        candidates = list(session.execute(select(Blob.sha256, Blob.size).where(_unreferenced_old(cutoff))).all())
    for sha, size in candidates:
        if dry_run:
            result.blobs += 1
            result.blob_bytes += size
            result.removed.append(sha)
        elif _remove_recorded(services, sha, cutoff):
            result.blobs += 1
            result.blob_bytes += size
            result.removed.append(sha)
        else:
            result.kept_referenced += 1
    # Bytes without a row: look the listing up against the rows in batches.
    listing = (item for item in store.iter_blobs() if item.modified < cutoff)
    batch: list = []
    for item in listing:
        batch.append(item)
        if len(batch) >= BATCH:
            _orphans(services, batch, result, dry_run)
            batch = []
    if batch:
        _orphans(services, batch, result, dry_run)
    log.info("gc: %d blobs (%d bytes), %d unrecorded (%d bytes), %d leftovers%s", result.blobs, result.blob_bytes,
             result.orphans, result.orphan_bytes, result.temporary, " (dry run)" if dry_run else "")
    return result


def _remove_recorded(services: Services, sha: str, cutoff: datetime) -> bool:
    """Delete one blob's row and bytes if, holding the row, it is still old and unreferenced."""
    try:
        with services.db.session() as session:
            deleted = session.execute(delete(Blob).where(Blob.sha256 == sha, _unreferenced_old(cutoff)))
            if deleted.rowcount != 1:  # type: ignore[attr-defined]
                return False  # stored again or named by a commit meanwhile
            session.flush()  # PostgreSQL: the row is locked (deleted) until this transaction ends
            session.execute(delete(UploadClaim).where(UploadClaim.sha256 == sha))
            services.store.delete(sha)
    except (IntegrityError, OperationalError) as exc:
        # A commit named it between the check and the delete (the foreign key), or the database
        # was busy: the row and the bytes stay.
        log.info("gc: kept %s (%s)", sha, type(exc).__name__)
        return False
    return True


def _orphans(services: Services, items: list, result: Collection, dry_run: bool) -> None:
    shas = [item.sha256 for item in items]
    with services.db.session() as session:
        recorded = set(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(shas))).all())
    for item in items:
        if item.sha256 in recorded:
            continue
        if dry_run or _remove_unrecorded(services, item.sha256, item.size):
            result.orphans += 1
            result.orphan_bytes += item.size
            result.removed.append(item.sha256)


def _remove_unrecorded(services: Services, sha: str, size: int) -> bool:
    """Bytes no row names: hold a placeholder row (so that a writer recording it waits), delete
    the bytes, drop the placeholder. A writer that recorded it first keeps it."""
    old = utcnow() - timedelta(days=36500)
    try:
        with services.db.session() as session:
            insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
            placed = session.execute(insert(Blob).values(sha256=sha, size=size, created_at=old, stored_at=old)
                                     .on_conflict_do_nothing(index_elements=["sha256"]))
            if placed.rowcount != 1:  # type: ignore[attr-defined]
                return False
            session.flush()
            services.store.delete(sha)
            session.execute(delete(Blob).where(Blob.sha256 == sha))
    except (IntegrityError, OperationalError):
        return False
    return True


class CollectorSchedule:
    """Runs the collector every `interval` seconds in a daemon thread of a server process. With
    several replicas each runs it; the row protocol makes concurrent runs safe."""

    def __init__(self, services: Services, interval: float) -> None:
        self._services = services
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="releasehub-gc", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                collect(self._services)
            except Exception:  # the next run tries again; a failing store must not end the server
                log.exception("gc run failed")
