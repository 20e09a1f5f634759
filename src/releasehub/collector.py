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
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError

from releasehub.db import utcnow
from releasehub.repos.models import Blob, Commit, CommitFile, UploadClaim
from releasehub.services import Services
from releasehub.storage.base import StoredBlob, StoredObject
from releasehub.xet.models import XetFile, XetFileXorb, XetXorb, XetXorbClaim, XetXorbSender
from releasehub.xet.service import XORBS

log = logging.getLogger("releasehub.gc")
BATCH = 500


@dataclass
class Collection:
    """What one run removed (or, with dry_run, would remove)."""

    dry_run: bool
    grace_seconds: int
    retention_seconds: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    orphans: int = 0
    orphan_bytes: int = 0
    temporary: int = 0
    kept_referenced: int = 0  # candidates a commit named while the collector looked
    xet_files: int = 0
    xorbs: int = 0
    xorb_bytes: int = 0
    xorb_orphans: int = 0
    xorb_orphan_bytes: int = 0
    kept_xorbs: int = 0  # candidates a client used (or a file came to use) while the collector looked
    removed: list[str] = field(default_factory=list)
    removed_xorbs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, "grace_seconds": self.grace_seconds,
                "retention_seconds": self.retention_seconds, "blobs": self.blobs, "blob_bytes": self.blob_bytes,
                "orphans": self.orphans, "orphan_bytes": self.orphan_bytes, "temporary": self.temporary,
                "kept_referenced": self.kept_referenced, "xet_files": self.xet_files, "xorbs": self.xorbs,
                "xorb_bytes": self.xorb_bytes, "xorb_orphans": self.xorb_orphans,
                "xorb_orphan_bytes": self.xorb_orphan_bytes, "kept_xorbs": self.kept_xorbs,
                "removed": self.removed[:1000], "removed_xorbs": self.removed_xorbs[:1000]}


def _unreferenced_old(cutoff: datetime):  # type: ignore[no-untyped-def]
    return (~exists().where(CommitFile.sha256 == Blob.sha256)) & (
        func.coalesce(Blob.stored_at, Blob.created_at) < cutoff)


def _file_uncommitted_old(cutoff: datetime):  # type: ignore[no-untyped-def]
    named = (select(CommitFile.sha256).join(Commit, Commit.id == CommitFile.commit_id)
             .where(Commit.repo_id == XetFile.repo_id, CommitFile.sha256 == XetFile.sha256))
    return (~named.exists()) & (XetFile.created_at < cutoff)


def _xorb_unused_old(cutoff: datetime):  # type: ignore[no-untyped-def]
    return (~exists().where(XetFileXorb.xorb_hash == XetXorb.hash)) & (XetXorb.last_used_at < cutoff)


def collect(services: Services, grace_seconds: int | None = None, *, retention_seconds: int | None = None,
            dry_run: bool = False, now: datetime | None = None) -> Collection:
    grace = services.settings.gc_grace_seconds if grace_seconds is None else grace_seconds
    retention = services.settings.xet_retention_seconds if retention_seconds is None else retention_seconds
    if grace < 0 or retention < 0:
        raise ValueError("The grace period and the Xet retention cannot be negative.")
    now = now or utcnow()
    cutoff = now - timedelta(seconds=grace)
    result = Collection(dry_run=dry_run, grace_seconds=grace, retention_seconds=retention)
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
    for batch in _batches(item for item in store.iter_blobs() if item.modified < cutoff):
        _orphans(services, batch, result, dry_run)
    _collect_xet(services, now - timedelta(seconds=retention), cutoff, result, dry_run)
    log.info("gc: %d blobs (%d bytes), %d unrecorded (%d bytes), %d leftovers, %d Xet files, %d xorbs (%d bytes), "
             "%d unrecorded xorbs (%d bytes)%s", result.blobs, result.blob_bytes, result.orphans,
             result.orphan_bytes, result.temporary, result.xet_files, result.xorbs, result.xorb_bytes,
             result.xorb_orphans, result.xorb_orphan_bytes, " (dry run)" if dry_run else "")
    return result


def _batches(items: Any) -> Any:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


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


def _orphans(services: Services, items: list[StoredBlob], result: Collection, dry_run: bool) -> None:
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


# ---------------------------------------------------------------- Xet


def _collect_xet(services: Services, retained: datetime, cutoff: datetime, result: Collection,
                 dry_run: bool) -> None:
    """Files first (their removal leaves xorbs unused), then xorbs, then xorb bytes without a row."""
    with services.db.session() as session:
        files = list(session.execute(select(XetFile.repo_id, XetFile.file_hash)
                                     .where(_file_uncommitted_old(retained))).all())
    for repo_pk, file_hash in files:
        if dry_run or _remove_file(services, repo_pk, file_hash, retained):
            result.xet_files += 1
    unused = _xorb_unused_old(retained)
    if dry_run:
        # Uses by the files this run would remove do not count.
        doomed = select(XetFile.file_hash).where(XetFile.repo_id == XetFileXorb.repo_id,
                                                 XetFile.file_hash == XetFileXorb.file_hash,
                                                 _file_uncommitted_old(retained))
        kept_use = select(XetFileXorb.xorb_hash).where(XetFileXorb.xorb_hash == XetXorb.hash, ~doomed.exists())
        unused = (~kept_use.exists()) & (XetXorb.last_used_at < retained)
    with services.db.session() as session:
        xorbs = list(session.execute(select(XetXorb.hash, XetXorb.packed_bytes).where(unused)).all())
    for hex_hash, size in xorbs:
        if dry_run or _remove_xorb(services, hex_hash, retained):
            result.xorbs += 1
            result.xorb_bytes += size
            result.removed_xorbs.append(hex_hash)
        else:
            result.kept_xorbs += 1
    for batch in _batches(item for item in services.store.iter_objects(XORBS) if item.modified < cutoff):
        _xorb_orphans(services, batch, result, dry_run)


def _remove_file(services: Services, repo_pk: int, file_hash: str, retained: datetime) -> bool:
    """Delete a Xet file's record and its uses of xorbs if it is still old and uncommitted."""
    try:
        with services.db.session() as session:
            deleted = session.execute(delete(XetFile).where(
                XetFile.repo_id == repo_pk, XetFile.file_hash == file_hash, _file_uncommitted_old(retained)))
            if deleted.rowcount != 1:  # type: ignore[attr-defined]
                return False
            session.execute(delete(XetFileXorb).where(XetFileXorb.repo_id == repo_pk,
                                                      XetFileXorb.file_hash == file_hash))
    except OperationalError as exc:
        log.info("gc: kept Xet file %s (%s)", file_hash, type(exc).__name__)
        return False
    return True


class _Kept(Exception):
    """The xorb was used meanwhile: roll back what this transaction removed."""


def _remove_xorb(services: Services, hex_hash: str, retained: datetime) -> bool:
    """Delete one xorb's claims, senders, row and bytes if, holding its row, it is still old and unused."""
    try:
        with services.db.session() as session:
            # The row first: locked (PostgreSQL) or under the write lock (SQLite) until the end, so
            # that a writer touching it waits and then finds it gone.
            held = session.execute(update(XetXorb).where(XetXorb.hash == hex_hash, _xorb_unused_old(retained))
                                   .values(last_used_at=XetXorb.last_used_at))
            if held.rowcount != 1:  # type: ignore[attr-defined]
                return False
            session.execute(delete(XetXorbClaim).where(XetXorbClaim.xorb_hash == hex_hash))
            session.execute(delete(XetXorbSender).where(XetXorbSender.xorb_hash == hex_hash))
            gone = session.execute(delete(XetXorb).where(XetXorb.hash == hex_hash, _xorb_unused_old(retained)))
            if gone.rowcount != 1:  # type: ignore[attr-defined]
                raise _Kept
            session.flush()
            services.store.delete_object(XORBS, hex_hash)
    except _Kept:
        return False
    except (IntegrityError, OperationalError) as exc:
        # A shard recorded a file using it (the foreign key of xet_file_xorbs), or the database was
        # busy: the row and the bytes stay.
        log.info("gc: kept xorb %s (%s)", hex_hash, type(exc).__name__)
        return False
    return True


def _xorb_orphans(services: Services, items: list[StoredObject], result: Collection, dry_run: bool) -> None:
    names = [item.name for item in items]
    with services.db.session() as session:
        recorded = set(session.scalars(select(XetXorb.hash).where(XetXorb.hash.in_(names))).all())
    for item in items:
        if item.name in recorded:
            continue
        if dry_run or _remove_unrecorded_xorb(services, item.name):
            result.xorb_orphans += 1
            result.xorb_orphan_bytes += item.size
            result.removed_xorbs.append(item.name)


def _remove_unrecorded_xorb(services: Services, hex_hash: str) -> bool:
    """Xorb bytes no row names: as `_remove_unrecorded`, with a placeholder xorb row."""
    old = utcnow() - timedelta(days=36500)
    try:
        with services.db.session() as session:
            insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
            placed = session.execute(insert(XetXorb).values(
                hash=hex_hash, num_chunks=0, unpacked_bytes=0, packed_bytes=0, chunk_index=b"", created_at=old,
                last_used_at=old).on_conflict_do_nothing(index_elements=["hash"]).returning(XetXorb.hash))
            if placed.scalar() is None:  # RETURNING, not rowcount: psycopg reported -1 for this insert
                return False
            session.flush()
            services.store.delete_object(XORBS, hex_hash)
            session.execute(delete(XetXorb).where(XetXorb.hash == hex_hash))
    except (IntegrityError, OperationalError) as exc:
        log.info("gc: kept unrecorded xorb %s (%s)", hex_hash, type(exc).__name__)
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
