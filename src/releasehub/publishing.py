"""The one way a revision lands: the commit, the card's policy, the events, for every caller.

The Hub's commit endpoint, `releasehub push` (through that endpoint) and `releasehub demo` all
call `commit` here, so that every commit follows the same rules:

- An `lfsFile` may name an oid only when the committer sent those bytes to this repo (an
  upload claim, recorded by the LFS, multipart and `/blobs` uploads) or may already download a
  file with that oid in this repo. A blob stored for another repo grants nothing, and the
  refusal reads exactly as for an oid that was never uploaded.
- The card's policy keys are applied by the commit that changes them, judged by its author's
  role (`access.service.on_new_revision`).
- A commit without a parent retries its compare-and-swap when another commit moved the branch
  in between; a commit that names its parent fails with 412 instead (the client asked for that).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from releasehub.access import Grant, Permission, RepoPolicy, decide
from releasehub.access import service as access_service
from releasehub.accounts.subject import Subject
from releasehub.db import utcnow
from releasehub.errors import PreconditionFailed
from releasehub.repos import service as repos
from releasehub.repos.models import Repo
from releasehub.storage import BlobStore

if TYPE_CHECKING:
    from releasehub.db import Database

# Attempts of a commit without a parent when other commits keep moving the branch.
CAS_ATTEMPTS = 20


def may_name_oid(session: Session, subject: Subject, repo: Repo, policy: RepoPolicy, grant: Grant | None,
                 now: datetime) -> repos.OidCheck:
    """The claim rule, for this subject, repo and time."""

    def check(sha256: str) -> bool:
        if repos.has_claim(session, repo.id, subject.user_id, sha256):
            return True
        return any(decide(subject, policy, Permission.REPO_DOWNLOAD, now, path, grant).allowed
                   for path in repos.paths_with_oid(session, repo.id, sha256))

    return check


def oid_check_for(session: Session, subject: Subject, repo: Repo) -> repos.OidCheck:
    policy = access_service.repo_policy(repo)
    return may_name_oid(session, subject, repo, policy, access_service.grant_of(session, repo, subject), utcnow())


@dataclass
class Published:
    oid: str
    warnings: list[str] = field(default_factory=list)


def commit(
    session: Session,
    store: BlobStore,
    repo: Repo,
    subject: Subject,
    *,
    branch: str,
    operations: list[repos.Operation],
    title: str,
    message: str = "",
    parent_commit: str | None = None,
    max_regular_bytes: int = 10 * 1024 * 1024,
) -> Published:
    """Commits `operations` to `branch` as `subject` and commits the session (the transaction)."""
    repo_pk = repo.id
    for attempt in range(CAS_ATTEMPTS):
        try:
            new = repos.create_commit(
                session, store, repo, branch=branch, operations=operations, title=title, message=message,
                author=subject.name or "", may_name=oid_check_for(session, subject, repo),
                parent_commit=parent_commit, max_regular_bytes=max_regular_bytes,
            )
            warnings = access_service.on_new_revision(session, repo, new, branch, subject)
            oid = new.oid
            session.commit()
            return Published(oid, warnings)
        except (PreconditionFailed, OperationalError) as exc:
            retry = parent_commit is None and attempt + 1 < CAS_ATTEMPTS and _moved_or_busy(exc)
            session.rollback()
            if not retry:
                raise
            reloaded = session.get(Repo, repo_pk)
            if reloaded is None:
                raise
            repo = reloaded
    raise AssertionError("unreachable")  # pragma: no cover


def _moved_or_busy(exc: Exception) -> bool:
    if isinstance(exc, PreconditionFailed):
        return True
    text = str(exc).lower()
    # SQLite: a reader that became a writer after another writer committed cannot go on.
    return "database is locked" in text or "busy" in text


# ---------------------------------------------------------------- cross-repo copies


@dataclass(frozen=True)
class CopySource:
    sha256: str
    xet_hash: str | None = None


def duplicate(session: Session, subject: Subject, source: Repo, target: Repo, files: list[CopySource],
              now: datetime | None = None) -> list[dict[str, str]]:
    """The Hub's `lfs-files/duplicate` (a cross-repo `CommitOperationCopy`): each file becomes the
    subject's claim in `target` when the subject may download, now, a file with that content in
    `source` (the claim rule's "may already read", across repos). Returns the failures; a file
    that is hidden and one that is missing fail alike. The caller has checked write on `target`."""
    from releasehub.xet.models import XetFile, XetFileXorb  # the Xet rows travel with the file

    now = now or utcnow()
    policy = access_service.repo_policy(source)
    grant = access_service.grant_of(session, source, subject)
    failed: list[dict[str, str]] = []
    claimed: list[str] = []
    for item in files:
        paths = repos.paths_with_oid(session, source.id, item.sha256)
        if not any(decide(subject, policy, Permission.REPO_DOWNLOAD, now, path, grant).allowed for path in paths):
            failed.append({"sha256": item.sha256, "error": f"{source.repo_id} holds no file with sha256 "
                                                            f"{item.sha256} that you may download."})
            continue
        claimed.append(item.sha256)
        xet = session.get(XetFile, (source.id, item.xet_hash)) if item.xet_hash else None
        if xet is not None and xet.sha256 == item.sha256 and session.get(XetFile, (target.id, xet.file_hash)) is None:
            session.add(XetFile(repo_id=target.id, file_hash=xet.file_hash, sha256=xet.sha256, size=xet.size,
                                user_id=subject.user_id or 0, terms=xet.terms, created_at=now))
            for (xorb,) in session.execute(select(XetFileXorb.xorb_hash).where(
                    XetFileXorb.repo_id == source.id, XetFileXorb.file_hash == xet.file_hash)):
                session.add(XetFileXorb(repo_id=target.id, file_hash=xet.file_hash, xorb_hash=xorb))
    if claimed and subject.user_id is not None:
        repos.record_claims(session, target.id, subject.user_id, claimed)
    session.flush()
    return failed


def publish_upload(db: Database, sha256: str, size: int, repo_pk: int, user_pk: int,
                   publish: Callable[[], None]) -> None:
    """An upload whose bytes are verified (they hash to `sha256`): record the blob and the
    uploader's claim on it in the repo the upload was bound to, then `publish` the bytes under
    their content address. The row comes first, so the collector never deletes the bytes of an
    upload in progress (see releasehub.collector); the claim before the bytes is harmless, since
    a commit checks that the bytes are stored."""
    with db.session() as session:
        repos.insert_blob_rows(session, [(sha256, size)])
        repos.record_claims(session, repo_pk, user_pk, [sha256])
    publish()
