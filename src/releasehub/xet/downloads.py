"""Xet downloads: reconstructions for files uploaded through Xet, and their signed xorb ranges.

A reconstruction is answered to a CAS read token (one repo, one user) only when that repo holds,
at a path `decide()` lets the token's user download now, a file with that Xet file hash; anything
else answers exactly as an unknown hash (hidden equals missing), before the Range is even read.

Two answer shapes over the same terms (the file's chunk ranges, trimmed to the Range asked):
- v1 (`fetch_info`): one signed link per distinct term range;
- v2 (`xorbs`): per xorb, the union of the file's chunk ranges, merged where they touch, with one
  signed link over all of them (split only to keep URLs short). The client asks v2 first.
Every link is a `tokens.RangeLink`: one xorb, exactly those byte ranges, an expiry. A xorb may
also hold chunks of other files, which no URL of this one reaches.

Each answer is one `file.downloaded` audit event (transport `xet`), like an LFS download: the
xorb range fetches that follow are not counted again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from releasehub.access import Permission, decide
from releasehub.access import service as access_service
from releasehub.accounts.service import ANONYMOUS
from releasehub.auditlog.log import EventData
from releasehub.db import utcnow
from releasehub.errors import BadRequest, NotFound, RangeNotSatisfiable
from releasehub.repos import service as repos
from releasehub.repos.models import Commit, CommitFile, Repo
from releasehub.services import Services
from releasehub.xet import reuse
from releasehub.xet.models import XetFile
from releasehub.xet.service import load_indexes
from releasehub.xet.tokens import CasGrant, RangeLink, Span
from releasehub.xet.xorb import XorbIndex

log = logging.getLogger("releasehub.xet")

# Ranges signed into one v2 URL: ~20 characters each, so a URL stays under ~2 KB.
MAX_SPANS_PER_URL = 64


def xet_hash_of(session: Session, repo_pk: int, sha256: str) -> str | None:
    """The Xet file hash of a file with this content uploaded through Xet to this repo, if any."""
    return session.scalar(select(XetFile.file_hash).where(XetFile.repo_id == repo_pk, XetFile.sha256 == sha256)
                          .order_by(XetFile.file_hash).limit(1))


def xet_hashes(session: Session, repo_pk: int, sha256s: set[str]) -> dict[str, str]:
    """sha256 -> Xet file hash for those of these contents uploaded through Xet to this repo."""
    found: dict[str, str] = {}
    wanted = sorted(sha256s)
    for start in range(0, len(wanted), 500):
        rows = session.execute(select(XetFile.sha256, XetFile.file_hash).where(
            XetFile.repo_id == repo_pk, XetFile.sha256.in_(wanted[start:start + 500])).order_by(XetFile.file_hash))
        for sha, file_hash in rows:
            found.setdefault(sha, file_hash)
    return found


def _missing(file_hash: str) -> NotFound:
    # One message for unknown and hidden: the answer must not tell them apart.
    return NotFound(f"No file with Xet hash {file_hash} is known here.")


@dataclass(frozen=True)
class Readable:
    """A Xet file the token's user may download now, and where: what the audit event names."""

    file_hash: str
    sha256: str
    size: int
    terms: bytes
    repo_id: str  # namespace/name
    path: str  # a path with this content that `decide` allows
    revision: str | None  # the token's commit, when the file is at that path in it
    actor: str | None


def readable_file(session: Session, grant: CasGrant, file_hash: str, now: datetime | None = None) -> Readable | None:
    """The token repo's file with this hash, when its user may download it now at some path.

    A path of the token's commit (the revision the client resolved) is preferred, so that the
    audit event names what was asked; any other path of the repo's commits also allows the file."""
    row = session.get(XetFile, (grant.repo_id, file_hash))
    if row is None:
        return None
    repo = session.get(Repo, grant.repo_id)
    subject = ANONYMOUS if not grant.user_id else reuse.subject_of(session, grant.user_id)
    if repo is None or subject is None:
        return None
    policy = access_service.repo_policy(repo)
    access = access_service.grant_of(session, repo, subject) if subject.user_id else None
    now = now or utcnow()

    def found(path: str, revision: str | None) -> Readable:
        return Readable(file_hash, row.sha256, int(row.size), bytes(row.terms), repo.repo_id, path, revision,
                        subject.name if subject.user_id else None)

    at_commit: list[str] = []
    if grant.commit:
        at_commit = list(session.scalars(
            select(CommitFile.path).join(Commit, Commit.id == CommitFile.commit_id)
            .where(Commit.repo_id == repo.id, Commit.oid == grant.commit, CommitFile.sha256 == row.sha256)
            .order_by(CommitFile.path)))
    for path in at_commit:
        if decide(subject, policy, Permission.REPO_DOWNLOAD, now, path, access).allowed:
            return found(path, grant.commit)
    for path in repos.paths_with_oid(session, repo.id, row.sha256):
        if decide(subject, policy, Permission.REPO_DOWNLOAD, now, path, access).allowed:
            return found(path, None)
    return None


def parse_range(header: str | None, size: int) -> tuple[int, int]:
    """The inclusive byte range a reconstruction's Range header asks for; the whole file without one.
    RangeNotSatisfiable (416, with `Content-Range: bytes */size`) when it starts past the end."""
    if not header:
        return 0, size - 1
    if not header.startswith("bytes=") or "," in header:
        raise BadRequest("A reconstruction takes one range: `Range: bytes=start-end`.")
    first, _, last = header[6:].strip().partition("-")
    try:
        if not first:
            length = int(last)
            if length <= 0 or size == 0:
                raise RangeNotSatisfiable(f"The file has {size} bytes.", size=size)
            return max(0, size - length), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        raise BadRequest("A reconstruction takes one range: `Range: bytes=start-end`.") from None
    if start >= size:
        raise RangeNotSatisfiable(f"The range starts at byte {start}; the file has {size} bytes.", size=size)
    if end < start:
        raise BadRequest("The range's end precedes its start.")
    return start, min(end, size - 1)


@dataclass(frozen=True)
class _Piece:
    xorb: str
    start: int  # chunk range [start, end)
    end: int
    unpacked: int


@dataclass(frozen=True)
class _Plan:
    """A file's terms trimmed to a byte range: what both answer shapes are built from."""

    readable: Readable
    first: int
    last: int
    offset_into_first: int
    pieces: list[_Piece]
    indexes: dict[str, XorbIndex]


def _plan(services: Services, grant: CasGrant, file_hash: str, range_header: str | None) -> _Plan:
    with services.db.session() as session:
        found = readable_file(session, grant, file_hash)
        if found is None:
            raise _missing(file_hash)
        terms = reuse.unpack_terms(found.terms)
        indexes = load_indexes(session, {x for x, _, _ in terms})
    first, last = parse_range(range_header, found.size)
    pieces: list[_Piece] = []
    offset_into_first = 0
    position = 0  # file offset of the current chunk
    for xorb, start, end in terms:
        index = indexes.get(xorb)
        if index is None:
            raise _missing(file_hash)  # never for a verified file; a xorb removed by hand
        kept: list[int] = []
        for chunk in range(start, end):
            chunk_size = index.sizes[chunk]
            if position + chunk_size > first and position <= last:
                if not pieces and not kept:
                    offset_into_first = first - position
                kept.append(chunk)
            position += chunk_size
        if kept:
            a, b = kept[0], kept[-1] + 1
            pieces.append(_Piece(xorb, a, b, sum(index.sizes[a:b])))
    return _Plan(found, first, last, offset_into_first, pieces, indexes)


def _byte_span(index: XorbIndex, start: int, end: int) -> Span:
    """The inclusive bytes of chunks [start, end) in the stored xorb (headers included)."""
    byte_end = index.offsets[end] if end < len(index.offsets) else index.packed_bytes
    return index.offsets[start], byte_end - 1


def _terms(plan: _Plan) -> list[dict[str, Any]]:
    return [{"hash": p.xorb, "unpacked_length": p.unpacked, "range": {"start": p.start, "end": p.end}}
            for p in plan.pieces]


def _url(base_url: str, link: RangeLink, key: bytes) -> str:
    return f"{base_url}/v1/xorb-ranges/{link.xorb}?{link.query(key)}"


def _fetch_info_v1(plan: _Plan, base_url: str, key: bytes, expires: int) -> dict[str, list[dict[str, Any]]]:
    fetch_info: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[str, int, int]] = set()
    for piece in plan.pieces:
        if (piece.xorb, piece.start, piece.end) in seen:
            continue
        seen.add((piece.xorb, piece.start, piece.end))
        start, end = _byte_span(plan.indexes[piece.xorb], piece.start, piece.end)
        fetch_info.setdefault(piece.xorb, []).append({
            "range": {"start": piece.start, "end": piece.end},
            "url": _url(base_url, RangeLink(piece.xorb, ((start, end),), expires), key),
            "url_range": {"start": start, "end": end},
        })
    return fetch_info


def merged_chunk_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Chunk ranges [start, end) joined where they overlap or touch, ascending. Every term lies
    inside one of them (the client looks each term up that way), and no chunk outside the terms
    is in any."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _xorbs_v2(plan: _Plan, base_url: str, key: bytes, expires: int) -> dict[str, list[dict[str, Any]]]:
    by_xorb: dict[str, list[tuple[int, int]]] = {}
    for piece in plan.pieces:
        by_xorb.setdefault(piece.xorb, []).append((piece.start, piece.end))
    xorbs: dict[str, list[dict[str, Any]]] = {}
    for xorb, ranges in by_xorb.items():
        index = plan.indexes[xorb]
        merged = merged_chunk_ranges(ranges)
        entries = []
        for at in range(0, len(merged), MAX_SPANS_PER_URL):
            group = merged[at:at + MAX_SPANS_PER_URL]
            spans = tuple(_byte_span(index, start, end) for start, end in group)
            entries.append({
                "url": _url(base_url, RangeLink(xorb, spans, expires), key),
                "ranges": [{"chunks": {"start": start, "end": end}, "bytes": {"start": span[0], "end": span[1]}}
                           for (start, end), span in zip(group, spans)],
            })
        xorbs[xorb] = entries
    return xorbs


def download_event(plan: _Plan, range_header: str | None, ip: str | None, version: str) -> EventData:
    """The audit event of one reconstruction answer, with the fields of an LFS download's."""
    found = plan.readable
    details: dict[str, Any] = {"transport": "xet", "xet_hash": found.file_hash, "reconstruction": version}
    if range_header:
        details["range"] = range_header
    return EventData(action="file.downloaded", actor=found.actor, repo=found.repo_id, revision=found.revision,
                     path=found.path, bytes=max(0, plan.last - plan.first + 1), ip=ip, details=details, at=utcnow())


def reconstruction(services: Services, grant: CasGrant, file_hash: str, range_header: str | None,
                   base_url: str, version: int = 1, ip: str | None = None) -> tuple[dict[str, Any], EventData]:
    """The QueryReconstructionResponse (v1: `fetch_info`, v2: `xorbs`) for a file the token's user
    may download, else 404; and the audit event the answer is recorded as."""
    plan = _plan(services, grant, file_hash, range_header)
    expires = int(time.time()) + services.settings.xet_token_ttl_seconds
    key = services.signing_key
    body: dict[str, Any] = {"offset_into_first_range": plan.offset_into_first, "terms": _terms(plan)}
    if version == 2:
        body["xorbs"] = _xorbs_v2(plan, base_url, key, expires)
    else:
        body["fetch_info"] = _fetch_info_v1(plan, base_url, key, expires)
    log.info("xet reconstruction served: v%d, file %s, bytes %d-%d, %d terms", version, file_hash, plan.first,
             plan.last, len(plan.pieces))
    return body, download_event(plan, range_header, ip, f"v{version}")
