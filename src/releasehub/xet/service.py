"""Xet uploads, verified: xorbs into `<data_dir>/xet/xorbs/`, shards into files in the blob store.

Nothing a client declares is trusted. A xorb is stored only once its chunks decompress to their
declared sizes and hash, as a tree, to the hash in its path; its chunk index is the server's own.
A shard is accepted only when every xorb it names was sent by this user to this repo (a claim),
every term's chunk range lies in its xorb and its unpacked size and verification hash (over the
xorb's own chunk hashes: proof that the client has the data) are right, the file hash recomputed
from the chunk hashes is the declared one, and the reconstructed content hashes to the sha256
the shard declares. Then the file is a blob like any other: `blobs` row, the uploader's claim in
the repo, and the following commit names it as an `lfsFile`.

Every request that lets a client rely on a xorb later refreshes its `last_used_at` (one UPDATE
per request): its upload, also of a xorb the server had (`was_inserted: false`), a shard that uses
it, and a dedup answer that names it (`touch_xorbs`). The collector removes only xorbs no file uses
whose last use is older than the retention. As for blobs, the row comes before the bytes: a xorb's
row is recorded (young) before its bytes are published, and a shard refreshes its xorbs' rows
before it reads their bytes and again in the transaction that records the files using them, so a
xorb is either left alone by the collector or found gone, and the shard is refused with a request
to upload the xorb again.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Iterable

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from releasehub.db import utcnow
from releasehub.errors import BadRequest, ChecksumMismatch, Conflict, NotFound, PayloadTooLarge
from releasehub.repos import service as repos
from releasehub.services import Services
from releasehub.storage.base import BlobWriter
from releasehub.xet.hashing import file_hash, hash_from_hex, hash_hex, verification_hash
from releasehub.xet import reuse
from releasehub.xet.assembly import Assembly, Ticket
from releasehub.xet.models import XetFile, XetFileXorb, XetXorb, XetXorbClaim, XetXorbSender
from releasehub.xet.shard import FileInfo, Shard, parse_shard
from releasehub.xet.tokens import CasGrant
from releasehub.xet.xorb import MAX_CHUNKS, XorbIndex, iter_unpacked, read_xorb

log = logging.getLogger("releasehub.xet")
WRITE_BATCH = 4 * 1024 * 1024
# Chunks that one shard's terms may name, all files together: bounds the hashing a shard costs
# (about 500 GiB of content at the chunker's 64 KiB average).
MAX_SHARD_CHUNK_REFS = 8 * 1024 * 1024
_TERM = struct.Struct("<32sII")


def spool_dir(services: Services) -> Path:
    path = services.settings.xet_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sweep_spool(services: Services, older_than_seconds: float) -> int:
    """Remove xorb bodies a crash left in the spool (never verified, never named); returns how many."""
    import time

    folder = services.settings.xet_dir / "tmp"
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than_seconds
    removed = 0
    for entry in folder.iterdir():
        if entry.is_file() and entry.stat().st_mtime <= cutoff:
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


XORBS = "xorbs"  # the blob store's namespace for verified xorbs


def _insert(session: Session):  # type: ignore[no-untyped-def]
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


# ---------------------------------------------------------------- xorbs


def store_xorb(services: Services, grant: CasGrant, hex_hash: str, expected: bytes,
               spooled: Path, ticket: Ticket | None = None) -> tuple[bool, XorbIndex]:
    """Verify the spooled body, keep it under its hash, record it and the uploader's claim.
    Returns whether the xorb was new to the server, and its index. Raises BadRequest, storing nothing.
    With the xorb's `ticket` in its session's assembly, its data goes to the assembly as it is
    verified when the assembly is at this xorb (the caller still says `ready` or `failed`)."""
    with open(spooled, "rb") as handle:
        index = read_xorb(handle, expected, ticket.sink() if ticket is not None else None)
        os.fsync(handle.fileno())
    now = utcnow()
    # The row first, young (also when the xorb was stored before: the client now relies on it), so
    # that the collector leaves the bytes alone from here on or has removed them before.
    with services.db.session() as session:
        insert = _insert(session)
        row = insert(XetXorb).values(
            hash=hex_hash, num_chunks=len(index.sizes), unpacked_bytes=index.unpacked_bytes,
            packed_bytes=index.packed_bytes, chunk_index=index.pack(), created_at=now, last_used_at=now)
        new = session.execute(row.on_conflict_do_update(index_elements=["hash"], set_={"last_used_at": now})
                              .returning(XetXorb.created_at)).scalar_one() == now
    # Atomic in every store: the name holds a complete, verified xorb or nothing.
    services.store.put_object(XORBS, hex_hash, spooled)
    with services.db.session() as session:
        insert = _insert(session)
        # The row again, held to the end: a collector that removed it (and maybe the bytes) since
        # the first statement is seen here, and none removes the bytes while the claims are written.
        session.execute(row.on_conflict_do_update(index_elements=["hash"], set_={"last_used_at": utcnow()}))
        if services.store.object_size(XORBS, hex_hash) is None:
            raise Conflict(f"Xorb {hex_hash} was collected while it was being stored; nothing was stored. "
                           "Upload it again.")
        claim = insert(XetXorbClaim).values(repo_id=grant.repo_id, user_id=grant.user_id, xorb_hash=hex_hash,
                                            received_bytes=index.packed_bytes, created_at=utcnow())
        session.execute(claim.on_conflict_do_update(
            index_elements=["repo_id", "user_id", "xorb_hash"],
            set_={"received_bytes": XetXorbClaim.received_bytes + index.packed_bytes}))
        session.execute(insert(XetXorbSender).values(user_id=grant.user_id, xorb_hash=hex_hash, created_at=utcnow())
                        .on_conflict_do_nothing(index_elements=["user_id", "xorb_hash"]))
    return new, index


def _touch(session: Session, hashes: Iterable[str], now: datetime) -> int:
    """Mark stored xorbs as used now; returns how many of `hashes` are recorded."""
    wanted = sorted(set(hashes))
    found = 0
    for start in range(0, len(wanted), 500):
        done = session.execute(update(XetXorb).where(XetXorb.hash.in_(wanted[start:start + 500]))
                               .values(last_used_at=now))
        found += done.rowcount  # type: ignore[attr-defined]
    return found


def touch_xorbs(services: Services, hashes: Iterable[str]) -> int:
    """Xorbs a client was just told it may name without sending (a dedup answer): they are used
    now, and kept at least the retention from now. Call it before the answer leaves. Returns how
    many of them are stored."""
    with services.db.session() as session:
        return _touch(session, hashes, utcnow())


def _missing(session: Session, hashes: set[str]) -> set[str]:
    stored = set(session.scalars(select(XetXorb.hash).where(XetXorb.hash.in_(sorted(hashes)))))
    return (hashes - stored) or hashes


def _gone(hashes: set[str]) -> BadRequest:
    names = ", ".join(sorted(hashes)[:3]) + (" ..." if len(hashes) > 3 else "")
    return BadRequest(f"Xorb {names} of this shard is no longer stored (xorbs no file uses are removed after "
                      "RELEASEHUB_XET_RETENTION_SECONDS); nothing was stored. Upload the xorb again "
                      "(POST /v1/xorbs/default/{hash}), then the shard.")


def received_bytes(session: Session, repo_pk: int) -> int:
    """Verified xorb bytes received for a repo, all uploads together (a counter for operators and tests)."""
    return int(session.scalar(select(func.coalesce(func.sum(XetXorbClaim.received_bytes), 0))
                              .where(XetXorbClaim.repo_id == repo_pk)) or 0)


def load_indexes(session: Session, hashes: Iterable[str], grant: CasGrant | None = None) -> dict[str, XorbIndex]:
    """The indexes of those stored xorbs; with `grant`, only those its user sent (to any repo: see
    `XetXorbSender`)."""
    wanted = sorted(set(hashes))
    found: dict[str, XorbIndex] = {}
    for start in range(0, len(wanted), 500):
        query = select(XetXorb.hash, XetXorb.chunk_index, XetXorb.packed_bytes).where(
            XetXorb.hash.in_(wanted[start:start + 500]))
        if grant is not None:
            query = query.join(XetXorbSender, XetXorbSender.xorb_hash == XetXorb.hash).where(
                XetXorbSender.user_id == grant.user_id)
        for hex_hash, raw, packed in session.execute(query):
            found[hex_hash] = XorbIndex.unpack(hash_from_hex(hex_hash), bytes(raw), packed)
    return found


# ---------------------------------------------------------------- shards


@dataclass(frozen=True)
class VerifiedFile:
    file_hash: str
    sha256: str
    size: int
    terms: list[tuple[str, int, int]]  # xorb hash, chunk start, chunk end

    def packed_terms(self) -> bytes:
        return b"".join(_TERM.pack(hash_from_hex(x), a, b) for x, a, b in self.terms)


def verify_file(info: FileInfo, number: int, xorbs: dict[str, XorbIndex], readable: reuse.Ranges,
                max_bytes: int) -> VerifiedFile:
    """Check one file of a shard against the server's own xorb indexes. A xorb in `readable`
    (not sent by the uploader to this repo) serves only terms inside those chunk ranges."""
    name = f"File {number} of the shard ({hash_hex(info.file_hash)})"
    if info.verification is None:
        raise BadRequest(f"{name} has no verification entries; shard uploads must carry them.")
    if info.sha256 is None:
        raise BadRequest(f"{name} has no metadata extension with its sha256; uploads to model repos need it.")
    chunks: list[tuple[bytes, int]] = []
    terms = []
    for term_number, (term, range_hash) in enumerate(zip(info.terms, info.verification)):
        xorb_hex = hash_hex(term.xorb_hash)
        index = xorbs.get(xorb_hex)
        if index is None:
            raise BadRequest(f"{name} names xorb {xorb_hex}, which you have not uploaded and which holds no "
                             "file you may download. Upload it (POST /v1/xorbs/default/{hash}) with this "
                             "repository's CAS token.")
        count = len(index.chunk_hashes)
        if not 0 <= term.chunk_start < term.chunk_end <= count:
            raise BadRequest(f"{name}, term {term_number}: chunks [{term.chunk_start}, {term.chunk_end}) are "
                             f"outside xorb {xorb_hex}, which holds {count}.")
        if xorb_hex in readable and not reuse.covered(readable[xorb_hex], term.chunk_start, term.chunk_end):
            raise BadRequest(f"{name} names chunks [{term.chunk_start}, {term.chunk_end}) of xorb {xorb_hex}, "
                             "which you have not uploaded to this repository and which are not part of a file "
                             "you may download.")
        hashes = index.chunk_hashes[term.chunk_start:term.chunk_end]
        sizes = index.sizes[term.chunk_start:term.chunk_end]
        if sum(sizes) != term.unpacked_bytes:
            raise BadRequest(f"{name}, term {term_number}: declares {term.unpacked_bytes} bytes; its chunks "
                             f"hold {sum(sizes)}.")
        if verification_hash(hashes) != range_hash:
            raise BadRequest(f"{name}, term {term_number}: the verification entry does not match the chunks of "
                             f"xorb {xorb_hex}.")
        chunks.extend(zip(hashes, sizes))
        terms.append((xorb_hex, term.chunk_start, term.chunk_end))
    if not chunks:
        raise BadRequest(f"{name} has no terms; empty files are committed inline, not through Xet.")
    if file_hash(chunks) != info.file_hash:
        raise BadRequest(f"{name}: its chunks hash to file hash {hash_hex(file_hash(chunks))}.")
    size = sum(s for _, s in chunks)
    if size > max_bytes:
        raise PayloadTooLarge(f"{name} has {size} bytes; the limit is {max_bytes}.")
    # The sha256 is stored in the protocol's word order (see hashing.hash_hex).
    return VerifiedFile(hash_hex(info.file_hash), hash_hex(info.sha256), size, terms)


def _reconstruct(services: Services, verified: VerifiedFile, xorbs: dict[str, XorbIndex]) -> None:
    """Stream the file's chunks out of its xorbs into the blob store, checked against its sha256."""
    writer = services.store.writer(max_bytes=services.settings.max_file_bytes, expected_size=verified.size)
    try:
        _write_terms(services, writer, verified.terms, xorbs)
        _publish(services, verified, writer)
    finally:
        writer.abort()


def _write_terms(services: Services, writer: BlobWriter, terms: list[tuple[str, int, int]],
                 xorbs: dict[str, XorbIndex]) -> None:
    handles: dict[str, BinaryIO] = {}
    try:
        for xorb_hex, start, end in terms:
            handle = handles.get(xorb_hex)
            if handle is None:
                try:
                    handle = handles[xorb_hex] = services.store.open_object(XORBS, xorb_hex)
                except NotFound:
                    raise _gone({xorb_hex}) from None
            for data in iter_unpacked(handle, xorbs[xorb_hex], start, end):
                writer.write(data)
    finally:
        for handle in handles.values():
            handle.close()


def _publish(services: Services, verified: VerifiedFile, writer: BlobWriter) -> None:
    """Check the written file against the sha256 its shard declares, record its row, publish it."""
    try:
        writer.finish(verified.sha256)
    except ChecksumMismatch as exc:
        raise ChecksumMismatch(f"The file with Xet hash {verified.file_hash} reconstructs to other content "
                               f"than sha256 {verified.sha256}, which its shard declares; nothing was "
                               "stored.") from exc
    with services.db.session() as session:  # the row before the bytes: see repos.insert_blob_rows
        repos.insert_blob_rows(session, [(verified.sha256, verified.size)])
    writer.publish()


def _store_file(services: Services, verified: VerifiedFile, xorbs: dict[str, XorbIndex],
                assembly: Assembly | None) -> bool:
    """Put the file into the blob store: continuing the session's assembly when it holds the
    file's first terms, else by a reconstruction. Returns whether the assembly was consumed."""
    assembled = assembly.complete(verified.terms) if assembly is not None else None
    if assembled is None:
        _reconstruct(services, verified, xorbs)
        return assembly is not None
    writer, done = assembled
    log.info("xet file %s: %d of its %d terms were assembled while the xorbs arrived", verified.file_hash, done,
             len(verified.terms))
    writer.expected_size = verified.size
    try:
        _write_terms(services, writer, verified.terms[done:], xorbs)
        _publish(services, verified, writer)
    finally:
        writer.abort()
    return True


def register_shard(services: Services, grant: CasGrant, body: bytes, session_id: str | None = None) -> int:
    """Verify a shard, reconstruct its files into the blob store and record them with the
    uploader's claims, all or nothing. Returns 1 when a file was new to this repo, else 0.
    `session_id` (the client's X-Xet-Session-Id) names the upload session whose assembly, when it
    holds one of the files exactly, spares that file's reconstruction (see `assembly`)."""
    shard = parse_shard(body)
    refs = sum(max(0, min(t.chunk_end, MAX_CHUNKS) - t.chunk_start) for f in shard.files for t in f.terms)
    if refs > MAX_SHARD_CHUNK_REFS:
        raise PayloadTooLarge(f"The shard's terms name {refs} chunks; a shard may name at most "
                              f"{MAX_SHARD_CHUNK_REFS}. Upload fewer files per shard.")
    assembly = services.assemblies.take(grant.repo_id, grant.user_id, session_id)
    try:
        return _register_shard(services, grant, shard, assembly)
    finally:
        if assembly is not None:
            assembly.abort()


def _register_shard(services: Services, grant: CasGrant, shard: Shard, assembly: Assembly | None) -> int:
    named = {hash_hex(t.xorb_hash) for f in shard.files for t in f.terms}
    with services.db.session() as session:
        xorbs = load_indexes(session, named, grant)
        readable = reuse.readable_ranges(session, grant.user_id, named - set(xorbs))
        xorbs.update(load_indexes(session, readable))
    verified: dict[str, VerifiedFile] = {}
    for number, info in enumerate(shard.files):
        checked = verify_file(info, number, xorbs, readable, services.settings.max_file_bytes)
        verified.setdefault(checked.file_hash, checked)
    if not verified:
        return 0
    # Before their bytes are read: the collector now leaves them for the retention, or removed them already.
    with services.db.session() as session:
        if _touch(session, named, utcnow()) < len(named):
            raise _gone(_missing(session, named))
    with services.db.session() as session:
        known = dict(session.execute(
            select(XetFile.file_hash, XetFile.sha256).where(XetFile.file_hash.in_(list(verified))).distinct()
        ).all())
    for checked in verified.values():
        previous = known.get(checked.file_hash)
        if previous == checked.sha256 and services.store.exists(checked.sha256):
            continue  # reconstructed and checked by this server before: same chunks, same content
        if previous is not None and previous != checked.sha256:
            raise ChecksumMismatch(f"The file with Xet hash {checked.file_hash} has sha256 {previous}, not "
                                   f"{checked.sha256} as the shard declares; nothing was stored.")
        if _store_file(services, checked, xorbs, assembly):
            assembly = None  # consumed by the first file it could hold
    with services.db.session() as session:
        # Again, holding the rows (PostgreSQL) or the write lock (SQLite) until the files using them
        # are recorded: a xorb collected since the first touch refuses the shard.
        if _touch(session, named, utcnow()) < len(named):
            raise _gone(_missing(session, named))
        repos.insert_blob_rows(session, [(f.sha256, f.size) for f in verified.values()])
        repos.record_claims(session, grant.repo_id, grant.user_id, [f.sha256 for f in verified.values()])
        insert = _insert(session)
        new = session.scalars(select(XetFile.file_hash).where(
            XetFile.repo_id == grant.repo_id, XetFile.file_hash.in_(list(verified)))).all()
        session.execute(insert(XetFile).values([
            {"repo_id": grant.repo_id, "file_hash": f.file_hash, "sha256": f.sha256, "size": f.size,
             "user_id": grant.user_id, "terms": f.packed_terms(), "created_at": utcnow()}
            for f in verified.values()
        ]).on_conflict_do_nothing(index_elements=["repo_id", "file_hash"]))
        uses = {(f.file_hash, xorb) for f in verified.values() for xorb, _, _ in f.terms}
        session.execute(insert(XetFileXorb).values([
            {"repo_id": grant.repo_id, "file_hash": file_hash_, "xorb_hash": xorb} for file_hash_, xorb in sorted(uses)
        ]).on_conflict_do_nothing(index_elements=["repo_id", "file_hash", "xorb_hash"]))
    return 1 if len(new) < len(verified) else 0
