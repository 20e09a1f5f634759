"""Xet downloads: reconstructions for files uploaded through Xet, and their signed xorb ranges.

A reconstruction is answered to a CAS read token (one repo, one user) only when that repo holds,
at a path `decide()` lets the token's user download now, a file with that Xet file hash; anything
else answers exactly as an unknown hash (hidden equals missing). Its xorb range URLs are signed
(`tokens.RangeLink`: one xorb, one byte range, an expiry) and cover only the chunks of that file's
own terms: a xorb may also hold chunks of other files, which no URL of this one reaches.
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
from releasehub.db import utcnow
from releasehub.errors import BadRequest, NotFound, RangeNotSatisfiable
from releasehub.repos import service as repos
from releasehub.repos.models import Repo
from releasehub.services import Services
from releasehub.xet import reuse
from releasehub.xet.models import XetFile
from releasehub.xet.service import load_indexes
from releasehub.xet.tokens import CasGrant, RangeLink

log = logging.getLogger("releasehub.xet")


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


def readable_file(session: Session, grant: CasGrant, file_hash: str, now: datetime | None = None) -> XetFile | None:
    """The token repo's file with this hash, when its user may download it now at some path."""
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
    for path in repos.paths_with_oid(session, repo.id, row.sha256):
        if decide(subject, policy, Permission.REPO_DOWNLOAD, now, path, access).allowed:
            return row
    return None


def parse_range(header: str | None, size: int) -> tuple[int, int]:
    """The inclusive byte range a reconstruction's Range header asks for; the whole file without one."""
    if not header:
        return 0, size - 1
    if not header.startswith("bytes=") or "," in header:
        raise BadRequest("A reconstruction takes one range: `Range: bytes=start-end`.")
    first, _, last = header[6:].strip().partition("-")
    try:
        if not first:
            length = int(last)
            if length <= 0:
                raise RangeNotSatisfiable(f"The file has {size} bytes.")
            return max(0, size - length), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        raise BadRequest("A reconstruction takes one range: `Range: bytes=start-end`.") from None
    if start >= size:
        raise RangeNotSatisfiable(f"The range starts at byte {start}; the file has {size} bytes.")
    if end < start:
        raise BadRequest("The range's end precedes its start.")
    return start, min(end, size - 1)


@dataclass(frozen=True)
class _Piece:
    xorb: str
    start: int  # chunk range
    end: int
    unpacked: int


def reconstruction(services: Services, grant: CasGrant, file_hash: str, range_header: str | None,
                   base_url: str) -> dict[str, Any]:
    """The v1 QueryReconstructionResponse for a file the token's user may download, else 404."""
    with services.db.session() as session:
        row = readable_file(session, grant, file_hash)
        if row is None:
            raise _missing(file_hash)
        terms = reuse.unpack_terms(bytes(row.terms))
        indexes = load_indexes(session, {x for x, _, _ in terms})
        size = int(row.size)
    first, last = parse_range(range_header, size)
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
    expires = int(time.time()) + services.settings.xet_token_ttl_seconds
    key = services.signing_key
    fetch_info: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[str, int, int]] = set()
    for piece in pieces:
        if (piece.xorb, piece.start, piece.end) in seen:
            continue
        seen.add((piece.xorb, piece.start, piece.end))
        index = indexes[piece.xorb]
        byte_start = index.offsets[piece.start]
        byte_end = (index.offsets[piece.end] if piece.end < len(index.offsets) else index.packed_bytes) - 1
        link = RangeLink(piece.xorb, byte_start, byte_end, expires)
        fetch_info.setdefault(piece.xorb, []).append({
            "range": {"start": piece.start, "end": piece.end},
            "url": f"{base_url}/v1/xorb-ranges/{piece.xorb}?{link.query(key)}",
            "url_range": {"start": byte_start, "end": byte_end},
        })
    log.info("xet reconstruction served: file %s, bytes %d-%d, %d terms", file_hash, first, last, len(pieces))
    return {
        "offset_into_first_range": offset_into_first,
        "terms": [{"hash": p.xorb, "unpacked_length": p.unpacked, "range": {"start": p.start, "end": p.end}}
                  for p in pieces],
        "fetch_info": fetch_info,
    }
