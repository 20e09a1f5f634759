"""The claim rule's second half for shards: a term may use a xorb its uploader did not send to this
repo when its chunk range lies inside a file, reconstructed here from that xorb, that the uploader
may download now (in any repo: `decide` with the file's path, so stages, tiers, gates and
hosted-only count). Knowing chunk hashes alone never rebuilds a file one may not read.

This is what lets the real client upload to a second repo a file it uploaded to a first one: its
shard cache names the first upload's xorbs and sends no bytes.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from releasehub.access import Permission, decide
from releasehub.access import service as access_service
from releasehub.accounts.models import User
from releasehub.accounts.subject import Subject
from releasehub.db import utcnow
from releasehub.repos import service as repos
from releasehub.repos.models import Repo
from releasehub.xet.models import XetFile, XetFileXorb

_TERM = struct.Struct("<32sII")
Ranges = dict[str, list[tuple[int, int]]]


def subject_of(session: Session, user_id: int) -> Subject | None:
    """The user behind a CAS token, as `decide` reads them (download decisions need no scope)."""
    user = session.get(User, user_id)
    if user is None:
        return None
    roles = {m.org.name: m.role for m in user.memberships}
    return Subject(user_id=user.id, name=user.name, is_admin=user.is_admin, scope="read", org_roles=roles)


def unpack_terms(raw: bytes) -> list[tuple[str, int, int]]:
    from releasehub.xet.hashing import hash_hex

    return [(hash_hex(h), start, end) for h, start, end in _TERM.iter_unpack(raw)]


def readable_ranges(session: Session, user_id: int, xorbs: set[str], now: datetime | None = None) -> Ranges:
    """For each of `xorbs`: the chunk ranges of files built from it that this user may download now."""
    if not xorbs or not user_id:
        return {}
    subject = subject_of(session, user_id)
    if subject is None:
        return {}
    now = now or utcnow()
    rows = session.execute(
        select(XetFile.repo_id, XetFile.sha256, XetFile.terms)
        .join(XetFileXorb, and_(XetFileXorb.repo_id == XetFile.repo_id, XetFileXorb.file_hash == XetFile.file_hash))
        .where(XetFileXorb.xorb_hash.in_(sorted(xorbs))).distinct()
    ).all()
    by_repo: dict[int, list[tuple[str, bytes]]] = defaultdict(list)
    for repo_pk, sha256, terms in rows:
        by_repo[repo_pk].append((sha256, bytes(terms)))
    ranges: Ranges = defaultdict(list)
    for repo_pk, files in by_repo.items():
        repo = session.get(Repo, repo_pk)
        if repo is None:
            continue
        policy = access_service.repo_policy(repo)
        grant = access_service.grant_of(session, repo, subject)
        for sha256, terms in files:
            # Only a committed file counts, and only by a path this subject may download now (an
            # upload claim is not enough: a hosted-only repo's team may not copy its weights out).
            if not any(decide(subject, policy, Permission.REPO_DOWNLOAD, now, path, grant).allowed
                       for path in repos.paths_with_oid(session, repo_pk, sha256)):
                continue
            for xorb, start, end in unpack_terms(terms):
                if xorb in xorbs:
                    ranges[xorb].append((start, end))
    return dict(ranges)


def covered(ranges: list[tuple[int, int]], start: int, end: int) -> bool:
    """Is [start, end) inside the readable ranges (files' terms, adjacent ones joined)?"""
    reach = None  # the end of the joined run of ranges that contains `start`
    for a, b in sorted(ranges):
        if reach is None:
            if a <= start < b:
                reach = b
        elif a <= reach:
            reach = max(reach, b)
        if reach is not None and reach >= end:
            return True
    return False
