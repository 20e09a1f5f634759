"""The access decision, exhaustively over subjects x visibility x permissions."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest

from releasehub.access import Permission, RepoPolicy, decide, decide_namespace
from releasehub.accounts.service import ANONYMOUS, Subject

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
OWNER = Subject(user_id=1, name="alice", scope="write")
OWNER_READ_TOKEN = Subject(user_id=1, name="alice", scope="read")
STRANGER = Subject(user_id=2, name="bob", scope="write")
ORG_WRITER = Subject(user_id=3, name="carol", scope="write", org_roles={"lab": "write"})
ORG_READER = Subject(user_id=4, name="dave", scope="write", org_roles={"lab": "read"})
ORG_ADMIN = Subject(user_id=5, name="erin", scope="write", org_roles={"lab": "admin"})
SERVER_ADMIN = Subject(user_id=6, name="root", scope="write", is_admin=True)
SUBJECTS = [ANONYMOUS, OWNER, OWNER_READ_TOKEN, STRANGER, ORG_WRITER, ORG_READER, ORG_ADMIN, SERVER_ADMIN]
REPO_PERMISSIONS = [Permission.REPO_READ, Permission.REPO_DOWNLOAD, Permission.REPO_WRITE, Permission.REPO_ADMIN]


def policy(namespace: str, visibility: str) -> RepoPolicy:
    return RepoPolicy(repo_id=f"{namespace}/m", namespace=namespace, visibility=visibility)


def role_of(subject: Subject, namespace: str) -> str | None:
    if subject.anonymous:
        return None
    role = "owner" if subject.name == namespace else subject.org_roles.get(namespace)
    return role or ("admin" if subject.is_admin else None)


def can_see(subject: Subject, namespace: str, visibility: str) -> bool:
    role = role_of(subject, namespace)
    if visibility == "private":
        return role in ("owner", "admin", "write")
    if visibility == "internal":
        return role is not None
    return True


@pytest.mark.parametrize(
    "subject,namespace,visibility,permission",
    list(itertools.product(SUBJECTS, ["alice", "lab"], ["public", "internal", "private"], REPO_PERMISSIONS)),
)
def test_decision_table(subject: Subject, namespace: str, visibility: str, permission: Permission) -> None:
    decision = decide(subject, policy(namespace, visibility), permission, NOW)
    if not can_see(subject, namespace, visibility):
        # A hidden repo is indistinguishable from a missing one.
        assert not decision.allowed
        assert decision.error_code == "RepoNotFound"
        assert decision.status == (401 if subject.anonymous else 404)
        return
    if permission in (Permission.REPO_READ, Permission.REPO_DOWNLOAD):
        assert decision.allowed
        return
    role = role_of(subject, namespace)
    needed = {"owner", "admin", "write"} if permission is Permission.REPO_WRITE else {"owner", "admin"}
    expected = role in needed and subject.scope == "write"
    assert decision.allowed is expected
    if not expected:
        assert decision.status in (401, 403)
        assert decision.reason


def test_read_only_token_message_says_what_to_do() -> None:
    decision = decide(OWNER_READ_TOKEN, policy("alice", "public"), Permission.REPO_WRITE, NOW)
    assert not decision.allowed and "--scope write" in decision.reason


def test_namespace_creation() -> None:
    assert decide_namespace(OWNER, "alice", True).allowed
    assert decide_namespace(ORG_WRITER, "lab", True).allowed
    assert not decide_namespace(ORG_READER, "lab", True).allowed
    assert not decide_namespace(STRANGER, "alice", True).allowed
    assert decide_namespace(ANONYMOUS, "alice", True).status == 401
    assert decide_namespace(OWNER, "ghost", False).status == 404
    assert not decide_namespace(OWNER_READ_TOKEN, "alice", True).allowed
