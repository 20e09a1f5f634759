"""The one place that answers "may this subject do this to this repo now".

`decide` is a pure function of its inputs: no I/O, no clock (`now` is passed in), so that it can
be tested exhaustively. Every HTTP route declares the `Permission` it needs; routes that touch a
repo call `decide` before they reveal anything.

Denials follow the Hub's contract, which `huggingface_hub` turns into its exceptions: a repo a
subject may not see does not exist for them (404 RepoNotFound, or 401 when anonymous, so that
the client suggests logging in), and a repo they may see but not change answers 403.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from releasehub.accounts.service import Subject


class Permission(enum.StrEnum):
    """`scope:resource:action` names. Every route declares exactly one."""

    PUBLIC = "public"  # no repo involved, anyone: health, OpenAPI schema
    ACCOUNT_READ = "account:read"  # any signed-in subject: whoami
    REPO_LIST = "repo:list"  # listing: each result is filtered through REPO_READ
    REPO_CREATE = "repo:create"  # create a repo in a namespace
    REPO_READ = "repo:read"  # metadata: info, tree, refs, commits
    REPO_DOWNLOAD = "repo:download"  # file content
    REPO_WRITE = "repo:write"  # commits, uploads, branches, tags
    REPO_ADMIN = "repo:admin"  # settings, delete
    UPLOAD_LINK = "upload:link"  # signed LFS upload links (the signature is the credential)


@dataclass(frozen=True)
class RepoPolicy:
    """What `decide` needs to know about a repo: plain data, built from its rows."""

    repo_id: str
    namespace: str
    private: bool


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    status: int = 200
    error_code: str | None = None

    @classmethod
    def allow(cls, reason: str) -> "Decision":
        return cls(True, reason)


def namespace_role(subject: Subject, namespace: str) -> str | None:
    """The subject's role over a namespace: owner, admin, write, read, or None."""
    if subject.anonymous:
        return None
    if subject.name == namespace:
        return "owner"
    role = subject.org_roles.get(namespace)
    if role is not None:
        return role
    if subject.is_admin:
        return "admin"
    return None


_WRITE_ROLES = frozenset({"owner", "admin", "write"})
_ADMIN_ROLES = frozenset({"owner", "admin"})


def _not_found(subject: Subject, repo_id: str) -> Decision:
    if subject.anonymous:
        return Decision(
            False,
            f"Repository {repo_id} not found. If it is private, pass a token that may read it "
            "(`hf auth login` or HF_TOKEN).",
            401,
            "RepoNotFound",
        )
    return Decision(
        False, f"Repository {repo_id} not found, or you have no access to it.", 404, "RepoNotFound"
    )


def decide(
    subject: Subject,
    policy: RepoPolicy,
    permission: Permission,
    now: datetime,
    path: str | None = None,
) -> Decision:
    role = namespace_role(subject, policy.namespace)
    can_see = not policy.private or role is not None
    if not can_see:
        return _not_found(subject, policy.repo_id)

    if permission in (Permission.REPO_READ, Permission.REPO_DOWNLOAD, Permission.REPO_LIST):
        return Decision.allow("member of the owning namespace" if policy.private else "public repository")

    if permission in (Permission.REPO_WRITE, Permission.REPO_ADMIN):
        needed = _WRITE_ROLES if permission is Permission.REPO_WRITE else _ADMIN_ROLES
        if subject.anonymous:
            return Decision(False, "Sign in with a write token to change this repository.", 401, "Unauthorized")
        if role not in needed:
            what = "write to" if permission is Permission.REPO_WRITE else "administer"
            return Decision(
                False,
                f"You ({subject.name}) may not {what} {policy.repo_id}: ask an admin of "
                f"{policy.namespace!r} for the {'write' if what == 'write to' else 'admin'} role.",
                403,
                "Forbidden",
            )
        if not subject.can_write:
            return Decision(
                False,
                "This token is read-only. Create a write token with "
                f"`releasehub tokens create {subject.name} --scope write`.",
                403,
                "Forbidden",
            )
        return Decision.allow(f"{role} of {policy.namespace}")

    return Decision(False, f"Permission {permission} does not apply to a repository.", 403, "Forbidden")


def decide_namespace(subject: Subject, namespace: str, namespace_exists: bool) -> Decision:
    """May the subject create a repository under `namespace`?"""
    if subject.anonymous:
        return Decision(False, "Sign in with a write token to create a repository.", 401, "Unauthorized")
    if not namespace_exists:
        return Decision(False, f"No user or organisation named {namespace!r}.", 404, "NotFound")
    role = namespace_role(subject, namespace)
    if role not in _WRITE_ROLES:
        return Decision(
            False,
            f"You ({subject.name}) may not create repositories under {namespace!r}; "
            "ask one of its admins for the write role.",
            403,
            "Forbidden",
        )
    if not subject.can_write:
        return Decision(
            False,
            f"This token is read-only. Create a write token with `releasehub tokens create {subject.name} --scope write`.",
            403,
            "Forbidden",
        )
    return Decision.allow(f"{role} of {namespace}")
