"""Request dependencies: the database session, the subject, and the permission each route declares.

Every route depends on exactly one dependency made by `requires()` or `repo_access()`; both carry
the declared `Permission` as an attribute, which `tests/unit/test_route_permissions.py` checks
for every route of the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from fastapi import Depends, Request
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from releasehub.access import Permission, RepoPolicy, decide
from releasehub.accounts.service import ANONYMOUS, Subject, authenticate
from releasehub.db import utcnow
from releasehub.errors import ReleasehubError, Unauthorized
from releasehub.repos import service as repos
from releasehub.repos.models import Repo
from releasehub.services import Services

# Revisions such as "refs/pr/1" arrive URL-encoded as one path segment ("refs%2Fpr%2F1").
# `EncodedSlashMiddleware` keeps those slashes apart from the path's own as this character.
ENCODED_SLASH = "\ue000"


def decode_segment(value: str) -> str:
    return value.replace(ENCODED_SLASH, "/")


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def get_session(services: Services = Depends(get_services)) -> Iterator[Session]:
    session = services.db._sessions()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def subject_from_header(session: Session | Connection, authorization: str | None) -> Subject:
    if not authorization:
        return ANONYMOUS
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthorized("Malformed Authorization header: send 'Authorization: Bearer <token>'.")
    subject = authenticate(session, credentials.strip())
    if subject is None:
        # The Hub's exact message: huggingface_hub matches it to tell a bad token from a hidden repo
        # (any other 401 message on a repo URL becomes RepositoryNotFoundError). The hint goes in the body.
        raise Unauthorized(
            "Invalid credentials in Authorization header",
            hint="The token is unknown, expired or revoked. "
            "Create a new one with `releasehub tokens create USER`.",
        )
    return subject


def get_subject(request: Request, session: Session = Depends(get_session)) -> Subject:
    return subject_from_header(session, request.headers.get("authorization"))


class AccessDenied(ReleasehubError):
    """A denial from `decide`, carried to the edge with its status and Hub error code."""

    def __init__(self, message: str, status_code: int, error_code: str | None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code or "Forbidden"


def requires(permission: Permission) -> Callable[..., Subject]:
    """For routes that do not act on one repo: returns the subject."""

    def dependency(subject: Subject = Depends(get_subject)) -> Subject:
        if permission is Permission.ACCOUNT_READ and subject.anonymous:
            raise Unauthorized("Sign in: pass a token with `Authorization: Bearer <token>`.")
        return subject

    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency


@dataclass
class RepoContext:
    session: Session
    subject: Subject
    repo: Repo
    services: Services


def policy_of(repo: Repo) -> RepoPolicy:
    return RepoPolicy(repo_id=repo.repo_id, namespace=repo.namespace, private=repo.private)


def check_policy(subject: Subject, policy: RepoPolicy, permission: Permission, path: str | None = None) -> None:
    decision = decide(subject, policy, permission, utcnow(), path)
    if not decision.allowed:
        raise AccessDenied(decision.reason, decision.status, decision.error_code)


def check(subject: Subject, repo: Repo, permission: Permission, path: str | None = None) -> None:
    check_policy(subject, policy_of(repo), permission, path)


def load_repo_checked(session: Session, subject: Subject, namespace: str, name: str,
                      permission: Permission, path: str | None = None) -> Repo:
    """The repo, if `decide` lets the subject act on it; a missing repo and a hidden one look the same."""
    repo = repos.find_repo(session, namespace, name.removesuffix(".git"))
    if repo is None:
        status = 401 if subject.anonymous else 404
        hint = " If it is private, pass a token that may read it." if subject.anonymous else ""
        raise AccessDenied(f"Repository {namespace}/{name} not found.{hint}", status, "RepoNotFound")
    check(subject, repo, permission, path)
    return repo


def repo_access(permission: Permission) -> Callable[..., RepoContext]:
    """For routes under /{namespace}/{name}: loads the repo and enforces `decide`."""

    def dependency(
        namespace: str,
        name: str,
        session: Session = Depends(get_session),
        subject: Subject = Depends(get_subject),
        services: Services = Depends(get_services),
    ) -> RepoContext:
        repo = load_repo_checked(session, subject, namespace, name, permission)
        return RepoContext(session=session, subject=subject, repo=repo, services=services)

    dependency.permission = permission  # type: ignore[attr-defined]
    dependency.checks_repo = True  # type: ignore[attr-defined]
    return dependency
