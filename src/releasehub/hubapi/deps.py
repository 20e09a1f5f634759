"""Request dependencies: the database session, the subject, and the permission each route declares.

Every route depends on exactly one dependency that declares its `Permission` and enforces it:
`requires()` (no repo: `decide_subject`), `repo_access()` (a repo: `decide` with its policy), the
signed upload link (`upload_routes.upload_link`) or the gateway's API key (`gateway_caller`).
`tests/unit/test_route_permissions.py` calls every route as a subject that lacks the declared
permission and expects a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator, NoReturn, Sequence

from fastapi import Depends, Request
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from releasehub.access import Decision, Grant, Permission, RepoPolicy, decide
from releasehub.access.decide import decide_subject, namespace_role, repo_not_found
from releasehub.access import service as access_service
from releasehub.access.policy import NO_RULES
from releasehub.accounts.service import ANONYMOUS, Subject, authenticate
from releasehub.db import utcnow
from releasehub.errors import AccessDenied, Unauthorized
from releasehub.repos import service as repos
from releasehub.repos.models import Repo
from releasehub.repos.service import FileState
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


def subject_from_header(session: Session | Connection | None, authorization: str | None,
                        rows_for: Callable[[str], Sequence[Any]] | None = None) -> Subject:
    """The subject of an Authorization header (`rows_for`: the token rows from a cache, see
    `accounts.authenticate`)."""
    if not authorization:
        return ANONYMOUS
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthorized("Malformed Authorization header: send 'Authorization: Bearer <token>'.")
    subject = authenticate(session, credentials.strip(), rows_for=rows_for)
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


def requires(permission: Permission) -> Callable[..., Subject]:
    """For routes that do not act on one repo: enforces `permission` (`decide_subject`), returns the subject."""

    def dependency(subject: Subject = Depends(get_subject)) -> Subject:
        raise_denied(decide_subject(subject, permission))
        return subject

    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency


@dataclass
class RepoContext:
    """A repo the subject may act on, with what `decide` needs for its files."""

    session: Session
    subject: Subject
    repo: Repo
    services: Services
    policy: RepoPolicy
    grant: Grant | None
    now: datetime

    def decide(self, permission: Permission, path: str | None = None) -> Decision:
        return decide(self.subject, self.policy, permission, self.now, path, self.grant)

    def visible(self, path: str) -> bool:
        """Does this file exist for the subject (stages and tiers)?"""
        return self.decide(Permission.REPO_READ, path).allowed

    def visible_files(self, files: dict[str, FileState]) -> dict[str, FileState]:
        if self.policy.rules is NO_RULES:
            return files
        return {path: state for path, state in files.items() if self.visible(path)}

    @property
    def team(self) -> bool:
        """The releasing team (write or admin role in the namespace): sees every file and the policy."""
        return namespace_role(self.subject, self.policy.namespace) in ("owner", "admin", "write")

    def hidden_names(self) -> set[str]:
        """Names (paths, file and folder names) of the repo's files, in any commit, that this subject
        may not see: no answer may hold them. Empty when nothing is hidden."""
        if self.policy.rules is NO_RULES or self.team:
            return set()
        return repos.hidden_names(repos.repo_paths(self.session, self.repo), self.visible)


def policy_of(repo: Repo) -> RepoPolicy:
    return access_service.repo_policy(repo)


def _grant_for(session: Session, subject: Subject, repo: Repo, policy: RepoPolicy) -> Grant | None:
    if subject.anonymous or (not policy.gated and policy.rules is NO_RULES):
        return None
    return access_service.grant_of(session, repo, subject)


def raise_denied(decision: Decision) -> None:
    if not decision.allowed:
        deny(decision)


def deny(decision: Decision) -> NoReturn:
    raise AccessDenied(decision.reason, decision.status, decision.error_code)


def check_policy(subject: Subject, policy: RepoPolicy, permission: Permission, path: str | None = None,
                 grant: Grant | None = None) -> None:
    raise_denied(decide(subject, policy, permission, utcnow(), path, grant))


def repo_context(session: Session, subject: Subject, services: Services, namespace: str, name: str,
                 permission: Permission) -> RepoContext:
    """The repo, if `decide` lets the subject act on it; a missing repo and a hidden one look the same."""
    name = name.removesuffix(".git")
    repo = repos.find_repo(session, namespace, name)
    if repo is None:
        deny(repo_not_found(subject, f"{namespace}/{name}"))
    policy = policy_of(repo)
    grant = _grant_for(session, subject, repo, policy)
    ctx = RepoContext(session, subject, repo, services, policy, grant, utcnow())
    raise_denied(ctx.decide(permission))
    return ctx


def load_repo_checked(session: Session, subject: Subject, namespace: str, name: str,
                      permission: Permission) -> Repo:
    return repo_context(session, subject, None, namespace, name, permission).repo  # type: ignore[arg-type]


def repo_access(permission: Permission) -> Callable[..., RepoContext]:
    """For routes under /{namespace}/{name}: loads the repo and enforces `decide`."""

    def dependency(
        namespace: str,
        name: str,
        session: Session = Depends(get_session),
        subject: Subject = Depends(get_subject),
        services: Services = Depends(get_services),
    ) -> RepoContext:
        return repo_context(session, subject, services, namespace, name, permission)

    dependency.permission = permission  # type: ignore[attr-defined]
    dependency.checks_repo = True  # type: ignore[attr-defined]
    return dependency


def wake_dispatcher(request: Request) -> None:
    """After a commit that may have queued webhook deliveries: send them now rather than at the next poll."""
    dispatcher = getattr(request.app.state, "webhook_dispatcher", None)
    if dispatcher is not None:
        dispatcher.wake()


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None
