"""The one place that answers "may this subject do this to this repo, or this file of it, now".

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

from releasehub.access.policy import CARD_FILES, NO_RULES, UNGATED_FILES, ReleaseRules
from releasehub.accounts.subject import Subject


class Permission(enum.StrEnum):
    """`scope:resource:action` names. Every route declares exactly one."""

    PUBLIC = "public"  # no repo involved, anyone: health, OpenAPI schema
    ACCOUNT_READ = "account:read"  # any signed-in subject: whoami
    REPO_LIST = "repo:list"  # listing: each result is filtered through REPO_READ
    REPO_CREATE = "repo:create"  # create a repo in a namespace
    REPO_READ = "repo:read"  # metadata: info, tree, refs, commits
    REPO_DOWNLOAD = "repo:download"  # file content
    REPO_WRITE = "repo:write"  # commits, uploads, branches, tags
    REPO_ADMIN = "repo:admin"  # settings, policy, webhooks, delete
    REPO_REVIEW = "repo:review"  # review access requests (write role, as on the Hub)
    ACCESS_REQUEST = "access:request"  # a signed-in subject asks for access to a repo they can see
    UPLOAD_LINK = "upload:link"  # signed LFS upload links (the signature is the credential)
    GATEWAY_CALL = "gateway:call"  # the OpenAI-compatible API: an API key, then REPO_READ for its user
    XET_CAS = "xet:cas"  # the Xet CAS routes: a CAS token (signed, one repo, one user, one direction),
    # or for xorb range URLs a signed link (one xorb, one byte range, an expiry)
    SERVER_ADMIN = "server:admin"  # users, all organisations, other users' tokens: a server admin's write token
    ORG_ADMIN = "org:admin"  # an organisation's members: signed in with write scope, then `decide_org_admin`


@dataclass(frozen=True)
class RepoPolicy:
    """What `decide` needs to know about a repo: plain data, built from its rows.

    `private`: the releasing team only (the owner; in an organisation its write and admin
    members). `internal`: every member of the owning organisation, read role included.
    `public`: everyone, subject to the gate, the stages and the tiers.
    """

    repo_id: str
    namespace: str
    visibility: str = "public"
    gated: str | None = None  # None, "auto" or "manual"
    rules: ReleaseRules = NO_RULES

    @property
    def private(self) -> bool:
        return self.visibility != "public"


@dataclass(frozen=True)
class Grant:
    """The subject's access request on this repo, as `decide` reads it."""

    status: str  # "pending" | "accepted" | "rejected"
    tier: str | None = None
    expires_at: datetime | None = None
    reason: str | None = None

    def active(self, now: datetime) -> bool:
        return self.status == "accepted" and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    status: int = 200
    error_code: str | None = None

    @classmethod
    def allow(cls, reason: str) -> "Decision":
        return cls(True, reason)

    @property
    def hidden(self) -> bool:
        """The thing does not exist for this subject (the caller answers exactly as for a missing one)."""
        return self.error_code in ("RepoNotFound", "EntryNotFound")


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
_ALL_ROLES = frozenset({"owner", "admin", "write", "read"})


def repo_not_found(subject: Subject, repo_id: str) -> Decision:
    """The one answer for a repo that is missing or hidden from this subject: status, code and
    message alike, so that nobody can tell the two apart."""
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


# A file hidden by a stage or tier. Callers answer with `repos.missing_file(path, commit)`, the
# same error as for a file that does not exist (this decision has no commit to name).
HIDDEN_ENTRY = Decision(False, "No such file at this revision.", 404, "EntryNotFound")


def is_card_file(path: str) -> bool:
    return path in CARD_FILES


def effective_tier(policy: RepoPolicy, grant: Grant | None, now: datetime) -> str | None:
    """The tier whose components the subject may see: the grant's, else the repo's default tier."""
    if grant is not None and grant.active(now) and grant.tier:
        return grant.tier
    return policy.rules.default_tier


def file_visible(policy: RepoPolicy, grant: Grant | None, now: datetime, path: str) -> bool:
    """Does `path` exist for an outsider (no role in the namespace) with this grant, now?"""
    rules = policy.rules
    if rules is NO_RULES or is_card_file(path):
        return True
    granted = grant is not None and grant.active(now)
    tier = effective_tier(policy, grant, now)
    if rules.has_tiers and not rules.tier_opens(tier, path):
        return False
    stage = rules.stage_of(path)
    return stage is None or rules.released(stage, tier if granted else None, granted, now)


def _gated(subject: Subject, policy: RepoPolicy, grant: Grant | None, now: datetime) -> Decision:
    repo = policy.repo_id
    how = (f"Request access with `releasehub access request {repo} --accept-license` "
           f"(or POST /api/models/{repo}/access-request).")
    if subject.anonymous:
        return Decision(False, f"Access to model {repo} is restricted. You must have access to it and be "
                               f"authenticated to access it. Please log in. {how}", 401, "GatedRepo")
    if grant is None:
        state = f"Access to model {repo} is restricted and you are not in the authorized list. {how}"
    elif grant.status == "pending":
        state = f"Access to model {repo} is restricted: your request is pending review by its owners."
    elif grant.status == "rejected":
        reason = f" Reason: {grant.reason}" if grant.reason else ""
        state = f"Access to model {repo} is restricted: your request was rejected.{reason} You may ask again. {how}"
    else:
        state = f"Access to model {repo} is restricted: your access expired. Ask again. {how}"
    return Decision(False, state, 403, "GatedRepo")


def decide(
    subject: Subject,
    policy: RepoPolicy,
    permission: Permission,
    now: datetime,
    path: str | None = None,
    grant: Grant | None = None,
) -> Decision:
    """Allow or deny, with the reason and the Hub error code.

    `path` is the file the request reveals (None for the repo as a whole); `grant` is the
    subject's access request on this repo, if any.
    """
    role = namespace_role(subject, policy.namespace)
    if policy.visibility == "private":
        can_see = role in _WRITE_ROLES
    elif policy.visibility == "internal":
        can_see = role in _ALL_ROLES
    else:
        can_see = True
    if not can_see:
        return repo_not_found(subject, policy.repo_id)

    if permission in (Permission.REPO_READ, Permission.REPO_DOWNLOAD, Permission.REPO_LIST):
        if (permission is Permission.REPO_DOWNLOAD and path is not None and policy.rules.hosted_only
                and not policy.rules.hosted_allows(path)
                and (role is not None or file_visible(policy, grant, now, path))):
            # Whatever else the policy says, and for the releasing team too: the weights stay here.
            return Decision(False, f"{path} is part of a hosted-only release: {policy.repo_id} is used through "
                                   "its API (POST /v1/chat/completions with an API key from the releaser); only its "
                                   "card, documentation, license, config and tokenizer files download.",
                            403, "HostedOnly")
        if role is not None:
            return Decision.allow(f"{role} of {policy.namespace}")
        if path is not None and not file_visible(policy, grant, now, path):
            return HIDDEN_ENTRY
        if permission is Permission.REPO_DOWNLOAD and policy.gated and path not in UNGATED_FILES:
            if grant is None or not grant.active(now):
                return _gated(subject, policy, grant, now)
            return Decision.allow(f"access granted ({grant.tier or 'default'} tier)")
        return Decision.allow("public repository")

    if permission is Permission.ACCESS_REQUEST:
        if subject.anonymous:
            return Decision(False, "Sign in to request access: pass a token (`hf auth login` or HF_TOKEN).",
                            401, "Unauthorized")
        return Decision.allow("signed in")

    if permission in (Permission.REPO_WRITE, Permission.REPO_ADMIN, Permission.REPO_REVIEW):
        needed = _ADMIN_ROLES if permission is Permission.REPO_ADMIN else _WRITE_ROLES
        if subject.anonymous:
            return Decision(False, "Sign in with a write token to change this repository.", 401, "Unauthorized")
        if role not in needed:
            what = {Permission.REPO_WRITE: "write to", Permission.REPO_ADMIN: "administer",
                    Permission.REPO_REVIEW: "review access requests of"}[permission]
            wanted = "admin" if permission is Permission.REPO_ADMIN else "write"
            return Decision(
                False,
                f"You ({subject.name}) may not {what} {policy.repo_id}: ask an admin of "
                f"{policy.namespace!r} for the {wanted} role.",
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


# Permissions that a route may declare without naming one repo, and what they ask of the subject
# before the route runs. Routes that act on a repo declare a repo permission through
# `repo_access`, which calls `decide` with the repo's policy; routes that find their repo in the
# body (delete) or create one (create) are judged here first and by `decide`/`decide_namespace`
# once the repo is known.
_SIGNED_IN = frozenset({Permission.ACCOUNT_READ, Permission.ACCESS_REQUEST})
_WRITE_SCOPE = frozenset({Permission.REPO_CREATE, Permission.REPO_WRITE, Permission.REPO_ADMIN,
                          Permission.REPO_REVIEW, Permission.ORG_ADMIN})


def decide_subject(subject: Subject, permission: Permission) -> Decision:
    """May this subject call a route that declares `permission` at all (before any repo is known)?"""
    if permission in (Permission.PUBLIC, Permission.REPO_LIST, Permission.REPO_READ, Permission.REPO_DOWNLOAD):
        return Decision.allow("open to anyone; each result is judged by `decide`")
    if permission in (Permission.UPLOAD_LINK, Permission.GATEWAY_CALL, Permission.XET_CAS):
        # Their credential is not a token: a signed link, an API key, a CAS token; their own dependencies check it.
        return Decision(False, f"Permission {permission} is checked by its own credential.", 403, "Forbidden")
    if subject.anonymous:
        return Decision(False, "Sign in: pass a token with `Authorization: Bearer <token>` (`hf auth login` or "
                               "HF_TOKEN).", 401, "Unauthorized")
    if permission in _SIGNED_IN:
        return Decision.allow("signed in")
    if permission is Permission.SERVER_ADMIN:
        if not subject.is_admin:
            return Decision(False, f"You ({subject.name}) are not a server admin: this needs an admin token "
                                   "(`releasehub login --token <an admin's write token>`).", 403, "Forbidden")
        if not subject.can_write:
            return Decision(False, "This needs an admin's write token; this one is read-only. Create one with "
                                   f"`releasehub tokens create {subject.name} --scope write`.", 403, "Forbidden")
        return Decision.allow("server admin with a write token")
    if permission in _WRITE_SCOPE and not subject.can_write:
        return Decision(False, "This token is read-only. Create a write token with "
                               f"`releasehub tokens create {subject.name} --scope write`.", 403, "Forbidden")
    return Decision.allow("signed in with a write token")


def decide_org_admin(subject: Subject, org: str) -> Decision:
    """May the subject manage the members of organisation `org` (which exists)?

    Its own admins may, and server admins. An organisation the subject has no role in does not
    exist for them (404, as for a missing one); one they belong to without the admin role
    answers 403. The route has already checked the write scope (`Permission.ORG_ADMIN`)."""
    if subject.anonymous:
        return Decision(False, "Sign in with a write token to manage an organisation.", 401, "Unauthorized")
    if subject.is_admin:
        return Decision.allow("server admin")
    role = subject.org_roles.get(org)
    if role is None:
        return org_not_found(org)
    if role != "admin":
        return Decision(False, f"You ({subject.name}) are a {role} member of {org!r}, not an admin: ask one of "
                               "its admins.", 403, "Forbidden")
    return Decision.allow(f"admin of {org}")


def org_not_found(org: str) -> Decision:
    """The one answer for an organisation that is missing or that the subject has no role in."""
    return Decision(False, f"No organisation named {org!r}, or you are not a member of it.", 404, "NotFound")


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
