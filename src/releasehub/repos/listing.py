"""Listing releases for one subject in a constant number of queries.

`hubapi.repo_routes.list_models` builds a full `repo_context` per repo (a policy, a grant and a
head commit each: N+1 queries). A page of the list needs the same decision for every row, so it
loads what `decide` needs for the whole page at once: the count, the page of repos joined with
their `main` head, the subject's access requests on those repos, and which are hosted. Four
queries, whether the page holds 3 releases or 50.

SQL narrows the rows to those the subject's roles may see (so that the count and the pages are
right); `decide` still judges every row, as everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_, select, true
from sqlalchemy.orm import Session

from releasehub.access import Grant, Permission, RepoPolicy, decide
from releasehub.access import service as access_service
from releasehub.access.models import AccessRequest
from releasehub.accounts.subject import Subject
from releasehub.db import as_utc
from releasehub.gateway.models import HostedModel
from releasehub.repos.models import Commit, Ref, Repo

DEFAULT_BRANCH = "main"
SORTS = ("lastModified", "name", "created")
_WRITE_ROLES = ("owner", "admin", "write")


@dataclass(frozen=True)
class Listed:
    """One release as the list shows it, with what `decide` needed to let the subject see it."""

    repo: Repo
    policy: RepoPolicy
    grant: Grant | None
    head_oid: str | None  # None before the first commit on main
    last_modified: datetime
    hosted: bool


@dataclass(frozen=True)
class Listing:
    items: list[Listed]
    total: int  # every release the subject may see under these filters, not only this page


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _visible_clause(subject: Subject) -> ColumnElement[bool]:
    """Rows whose visibility `decide` lets this subject see (the roles of `access.decide.namespace_role`)."""
    if subject.anonymous:
        return Repo.visibility == "public"
    roles = dict(subject.org_roles)
    if subject.name:
        roles[subject.name] = "owner"  # the subject's own namespace wins over any org role of that name
    writes = [ns for ns, role in roles.items() if role in _WRITE_ROLES]
    reads = [ns for ns, role in roles.items() if role not in _WRITE_ROLES]
    if subject.is_admin:
        # A server admin is admin of every namespace, except where an org role says otherwise:
        # a read member of an org sees its internal repos but not its private ones.
        return not_(and_(Repo.visibility == "private", Repo.namespace.in_(reads))) if reads else true()
    clauses: list[ColumnElement[bool]] = [Repo.visibility == "public"]
    if writes:
        clauses.append(Repo.namespace.in_(writes))
    if reads:
        clauses.append(and_(Repo.visibility == "internal", Repo.namespace.in_(reads)))
    return or_(*clauses)


def _filters(subject: Subject, search: str | None, author: str | None) -> list[ColumnElement[bool]]:
    filters = [Repo.repo_type == "model", _visible_clause(subject)]
    if author:
        filters.append(Repo.namespace == author)
    if search:
        pattern = f"%{_escape_like(search.lower())}%"
        filters.append(func.lower(Repo.namespace + "/" + Repo.name).like(pattern, escape="\\"))
    return filters


def _order(sort: str, modified: Any) -> list[Any]:
    if sort == "name":
        return [Repo.namespace, Repo.name]
    if sort == "created":
        return [Repo.created_at.desc(), Repo.id.desc()]
    return [modified.desc(), Repo.id.desc()]


def visible_releases(session: Session, subject: Subject, now: datetime, *, search: str | None = None,
                     author: str | None = None, sort: str = "lastModified", offset: int = 0,
                     limit: int = 50) -> Listing:
    """The releases `subject` may see (REPO_READ), one page of them, in four queries."""
    filters = _filters(subject, search, author)
    total = session.scalar(select(func.count(Repo.id)).where(*filters)) or 0
    if offset >= total:
        return Listing([], total)
    modified = func.coalesce(Commit.created_at, Repo.created_at)
    rows = session.execute(
        select(Repo, Commit.oid, Commit.created_at)
        .outerjoin(Ref, and_(Ref.repo_id == Repo.id, Ref.kind == "branch", Ref.name == DEFAULT_BRANCH))
        .outerjoin(Commit, Commit.id == Ref.commit_id)
        .where(*filters).order_by(*_order(sort, modified)).offset(offset).limit(limit)
    ).all()
    ids = [repo.id for repo, _, _ in rows]
    grants = _grants(session, subject, ids)
    hosted = set(session.scalars(select(HostedModel.repo_id).where(HostedModel.repo_id.in_(ids))))
    items = []
    for repo, oid, created in rows:
        policy = access_service.repo_policy(repo)
        grant = grants.get(repo.id)
        if not decide(subject, policy, Permission.REPO_READ, now, grant=grant).allowed:
            continue  # the SQL filter and `decide` disagree: `decide` wins
        items.append(Listed(repo, policy, grant, oid, as_utc(created) or repo.created_at, repo.id in hosted))
    return Listing(items, total)


def _grants(session: Session, subject: Subject, repo_ids: list[int]) -> dict[int, Grant]:
    """The subject's access requests on these repos, in one query (none for an anonymous subject)."""
    if subject.user_id is None or not repo_ids:
        return {}
    rows = session.execute(
        select(AccessRequest.repo_id, AccessRequest.status, AccessRequest.tier, AccessRequest.expires_at,
               AccessRequest.reason)
        .where(AccessRequest.user_id == subject.user_id, AccessRequest.repo_id.in_(repo_ids))
    ).all()
    return {repo_id: Grant(status, tier, as_utc(expires), reason) for repo_id, status, tier, expires, reason in rows}


def commits_by_prefix(session: Session, repo: Repo, prefix: str, limit: int = 2) -> list[Commit]:
    """Commits of `repo` whose oid starts with `prefix` (lower-case hex): a short oid names one
    commit only when exactly one matches."""
    return list(session.scalars(
        select(Commit).where(Commit.repo_id == repo.id, Commit.oid.like(f"{prefix}%")).limit(limit)
    ))


def changed_files(older: dict[str, Any], newer: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """Paths added, changed and removed from `older` to `newer` (file states compared as values)."""
    added = sorted(set(newer) - set(older))
    removed = sorted(set(older) - set(newer))
    changed = sorted(p for p in set(newer) & set(older) if newer[p] != older[p])
    return added, changed, removed

