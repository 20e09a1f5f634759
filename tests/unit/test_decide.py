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


def test_decide_answers_only_with_documented_codes_and_hidden_equals_missing() -> None:
    from releasehub.access.decide import decide_subject, repo_not_found
    from releasehub.access.policy import compile_rules, parse_policy
    from releasehub.errors import DECISION_CODES

    rules = compile_rules(parse_policy({"hosted_only": True, "stages": [
        {"name": "s", "files": ["*.bin"], "releases": []}]}, NOW))
    codes = set()
    for subject, namespace, visibility, permission, gated, path in itertools.product(
            SUBJECTS, ["alice", "lab"], ["private", "internal", "public"], list(Permission), [None, "manual"],
            [None, "README.md", "w.safetensors", "x.bin"]):
        pol = RepoPolicy(f"{namespace}/m", namespace, visibility, gated, rules)
        for decision in (decide(subject, pol, permission, NOW, path), decide_subject(subject, permission),
                         decide_namespace(subject, namespace, True)):
            if not decision.allowed:
                codes.add(decision.error_code)
    assert codes <= set(DECISION_CODES) and {"RepoNotFound", "EntryNotFound", "HostedOnly"} <= codes
    # A hidden repo's answer is the missing repo's, for every subject.
    for subject in SUBJECTS:
        hidden = decide(subject, policy("zed", "private"), Permission.REPO_READ, NOW)
        if not hidden.allowed:
            assert hidden == repo_not_found(subject, "zed/m")


def test_requires_enforces_what_a_route_declares() -> None:
    from releasehub.access.decide import decide_subject

    assert decide_subject(ANONYMOUS, Permission.ACCOUNT_READ).status == 401
    assert decide_subject(OWNER, Permission.ACCOUNT_READ).allowed
    assert decide_subject(OWNER_READ_TOKEN, Permission.REPO_CREATE).status == 403
    assert decide_subject(OWNER, Permission.REPO_CREATE).allowed
    assert decide_subject(ANONYMOUS, Permission.REPO_LIST).allowed
    # Credentials other than a token are checked by their own dependencies, never let through here.
    assert not decide_subject(OWNER, Permission.UPLOAD_LINK).allowed
