"""Release policies and access requests over the database: what routes and the CLI call.

`decide` stays pure; this module builds its inputs (`RepoPolicy`, `Grant`) from rows, stores
policy changes, and moves access requests through their states, recording each change in the
audit log (and the webhook outbox) in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from releasehub.access.decide import Grant, Permission, RepoPolicy, decide
from releasehub.access.eligibility import Applicant, check_eligibility, declared_country, validate_form
from releasehub.access.licenses import ResolvedLicense, license_from_card, license_text_for_acceptance
from releasehub.access.models import AccessRequest
from releasehub.access.policy import (
    NO_RULES,
    PolicyDoc,
    PolicyError,
    ReleaseRules,
    compile_rules,
    document_json,
    parse_policy,
    policy_from_card,
)
from releasehub.accounts.models import User
from releasehub.accounts.service import Subject, get_user
from releasehub.db import utcnow
from releasehub.errors import (
    AlreadyRequested,
    BadRequest,
    LicenseChanged,
    LicenseNotAccepted,
    NotFound,
)
from releasehub.errors import NotGated as NothingToRequest
from releasehub.events import emit
from releasehub.repos import service as repos
from releasehub.repos.cards import CARD_FILENAME
from releasehub.repos.models import Repo
from releasehub.storage import BlobStore

DEFAULT_PROMPT = "You need to agree to share your contact information to access this model."
LICENSE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "LICENCE.md", "LICENCE.txt")
STATUSES = ("pending", "accepted", "rejected")


# ---------------------------------------------------------------------------------------------
# Policies


_rules_cache: dict[int, tuple[int, ReleaseRules, PolicyDoc]] = {}
_rules_lock = threading.Lock()


def _compiled(repo_pk: int, version: int, raw: dict[str, Any] | str | None) -> tuple[ReleaseRules, PolicyDoc]:
    cached = _rules_cache.get(repo_pk)
    if cached is not None and cached[0] == version:
        return cached[1], cached[2]
    if isinstance(raw, str):  # the column read as text: parsed only when this version is not compiled yet
        raw = json.loads(raw)
    doc = PolicyDoc.model_validate(raw or {})
    rules = compile_rules(doc)
    with _rules_lock:
        if len(_rules_cache) > 10_000:
            _rules_cache.clear()
        _rules_cache[repo_pk] = (version, rules, doc)
    return rules, doc


def compiled_policy(repo_pk: int, version: int, raw: dict[str, Any] | str | None) -> tuple[ReleaseRules, PolicyDoc]:
    """Rules and document of a stored policy, compiled once per (repo, version) in this process."""
    if not version:
        return NO_RULES, PolicyDoc()
    return _compiled(repo_pk, version, raw)


def cached_rules(repo_pk: int, version: int) -> ReleaseRules | None:
    """The compiled rules when this process already holds this version (the hot path skips a query)."""
    if version == 0:
        return NO_RULES
    cached = _rules_cache.get(repo_pk)
    return cached[1] if cached is not None and cached[0] == version else None


def rules_from_raw(repo_pk: int, version: int, raw: dict[str, Any] | None) -> ReleaseRules:
    return _compiled(repo_pk, version, raw)[0] if version else NO_RULES


def stored_doc(repo: Repo) -> PolicyDoc:
    return _compiled(repo.id, repo.policy_version, repo.policy)[1]


def repo_policy(repo: Repo) -> RepoPolicy:
    rules = rules_from_raw(repo.id, repo.policy_version, repo.policy)
    return RepoPolicy(repo.repo_id, repo.namespace, repo.visibility, repo.gated, rules)


def effective_doc(repo: Repo) -> dict[str, Any]:
    """The whole policy as stored, with visibility and gated (what `policy show` prints)."""
    doc = document_json(stored_doc(repo))
    return {"visibility": repo.visibility, "gated": repo.gated or False, **doc}


def check_visibility(session: Session, repo: Repo, visibility: str) -> None:
    if visibility == "internal":
        from releasehub.accounts.models import Org

        if session.scalar(select(Org.id).where(Org.name == repo.namespace)) is None:
            raise BadRequest(f"`internal` means every member of the owning organisation, and {repo.namespace!r} "
                             "is a user: use private or public, or move the repo to an organisation.")


def set_policy(session: Session, repo: Repo, raw: Any, actor: str | None, now: datetime | None = None,
               source: str = "api") -> dict[str, Any]:
    """Replaces the repo's policy with the document `raw` (validated whole; nothing changes on error)."""
    now = now or utcnow()
    try:
        doc = parse_policy(raw, now)
    except PolicyError as exc:
        raise BadRequest(str(exc)) from None
    before = effective_doc(repo)
    if doc.visibility is not None:
        check_visibility(session, repo, doc.visibility)
        repo.set_visibility(doc.visibility)
    if doc.gated is not None:
        repo.gated = doc.gated or None
    stored = document_json(doc.model_copy(update={"visibility": None, "gated": None}))
    stored.pop("visibility", None)
    stored.pop("gated", None)
    _store(session, repo, stored, before, actor, source)
    return effective_doc(repo)


def _store(session: Session, repo: Repo, stored: dict[str, Any], before: dict[str, Any], actor: str | None,
           source: str) -> None:
    repo.policy = stored or None
    repo.policy_version = (repo.policy_version or 0) + 1
    session.flush()
    after = effective_doc(repo)
    if after != before:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        emit(session, "policy.changed", repo, actor=actor,
             details={"source": source, "changed": changed, "policy": after})


def update_settings(session: Session, repo: Repo, *, visibility: str | None, gated: Any, actor: str | None) -> None:
    """The Hub's settings call: visibility and gate mode."""
    before = effective_doc(repo)
    if visibility is not None:
        check_visibility(session, repo, visibility)
        repo.set_visibility(visibility)
    if gated is not None:
        if gated in (False, "false", "False"):
            repo.gated = None
        elif gated in ("auto", "manual"):
            repo.gated = gated
        else:
            raise BadRequest(f"Invalid gated value {gated!r}: use 'auto', 'manual' or false.")
    session.flush()
    after = effective_doc(repo)
    if after != before:
        changed = sorted(k for k in after if before.get(k) != after.get(k))
        emit(session, "policy.changed", repo, actor=actor,
             details={"source": "settings", "changed": changed, "policy": after})


# What a card from a writer may change: how the request form looks and asks. Everything else in
# the policy decides who gets what (stages, tiers, components, eligibility, API limits, grant
# length, the license), which is the admin's, as are visibility, the gate mode and hosted_only.
WRITER_CARD_KEYS = frozenset({"gate"})

# Keys of a card's `releasehub:` block that name files by glob: whoever reads README.md reads them.
GLOB_KEYS = ("stages", "components")

CARD_PUBLIC_WARNING = (
    "README.md's `releasehub:` block names files by glob ({keys}), and README.md is readable by everyone "
    "who can see the repo: those names are public before their release. Keep them private with "
    "`releasehub policy set REPO FILE` instead."
)


def card_changes(repo: Repo, card: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The card's policy keys that differ from what the card last applied: what this commit, which
    changed README.md, is to apply (a `policy set` since then stays where the card agrees)."""
    applied = (repo.card_source or {}).get("applied") or {}
    new = policy_from_card(card, now)
    changed = {k: v for k, v in new.items() if applied.get(k) != v}
    # Like visibility and the gate mode, hosted-only is the admin's alone: a card never opens (or
    # closes) the weights of a hosted release.
    changed.pop("hosted_only", None)
    return changed


def _relative(value: Any) -> bool:
    return isinstance(value, str) and (value.strip() == "now" or value.strip().startswith("+"))


def fix_card_times(repo: Repo, changed: dict[str, Any], now: datetime) -> None:
    """Relative stage times (`at: +30d`) become instants once: the first commit that writes a
    (stage, audience, text) fixes it, and later edits of the card keep that instant."""
    stages = changed.get("stages")
    if not isinstance(stages, list):
        return
    source = dict(repo.card_source or {})
    fixed = dict(source.get("times") or {})
    out = []
    for stage in stages:
        if not isinstance(stage, dict) or not isinstance(stage.get("releases"), list):
            out.append(stage)
            continue
        releases = []
        for release in stage["releases"]:
            if isinstance(release, dict) and _relative(release.get("at")):
                key = f"{stage.get('name')}\x00{release.get('audience')}\x00{str(release['at']).strip()}"
                if key not in fixed:
                    instant = parse_policy({"stages": [{"name": "x", "files": ["x"], "releases": [
                        {"audience": "everyone", "at": release["at"]}]}]}, now).stages[0].releases[0].at
                    fixed[key] = instant.isoformat()
                release = {**release, "at": fixed[key]}
            releases.append(release)
        out.append({**stage, "releases": releases})
    changed["stages"] = out
    repo.card_source = {**source, "times": fixed}


def apply_card(session: Session, repo: Repo, changed: dict[str, Any], author: Subject,
               now: datetime | None = None) -> str | None:
    """A commit on main changed these policy keys of the card: they replace the stored ones.

    Returns a problem message when (part of) the card's policy was not applied: it is invalid (the
    stored policy then stays as it was), or its author lacks the admin role for keys that decide
    access (only the request form's keys are applied then). The message is shown as the card's error.
    """
    now = now or utcnow()
    changed = dict(changed)
    problem = None
    admin = decide(author, repo_policy(repo), Permission.REPO_ADMIN, now).allowed
    withheld = sorted(set(changed) - WRITER_CARD_KEYS) if not admin else []
    if withheld:
        for key in withheld:
            changed.pop(key)
        problem = (f"releasehub policy in the card was not applied for {', '.join(withheld)}: changing who may "
                   f"access {repo.repo_id} needs the admin role, and {author.name or 'the author'} has write "
                   "access only (the request form's fields and texts were applied). An admin can set it with "
                   "`releasehub policy set` or by changing those keys of the card.")
    if not changed:
        return problem
    written = dict(changed)  # as the card has them, before relative times are fixed
    fix_card_times(repo, changed, now)
    merged = {**(repo.policy or {}), **changed}
    try:
        doc = parse_policy(merged, now)
    except PolicyError as exc:
        return f"releasehub policy in the card was not applied: {exc}"
    source = dict(repo.card_source or {})
    repo.card_source = {**source, "applied": {**(source.get("applied") or {}), **written}}
    before = effective_doc(repo)
    stored = document_json(doc)
    stored.pop("visibility", None)
    stored.pop("gated", None)
    if stored != (repo.policy or {}):
        _store(session, repo, stored, before, author.name, "card")
    return problem


def card_warnings(card: dict[str, Any] | None) -> list[str]:
    extra = (card or {}).get("releasehub")
    if not isinstance(extra, dict):
        return []
    keys = [k for k in GLOB_KEYS if extra.get(k)]
    return [CARD_PUBLIC_WARNING.format(keys=", ".join(keys))] if keys else []


# ---------------------------------------------------------------------------------------------
# Grants


def grant_row(session: Session, repo: Repo, user_id: int | None) -> AccessRequest | None:
    if user_id is None:
        return None
    return session.scalar(select(AccessRequest).where(AccessRequest.repo_id == repo.id,
                                                      AccessRequest.user_id == user_id))


def as_grant(row: AccessRequest | None) -> Grant | None:
    if row is None:
        return None
    return Grant(row.status, row.tier, row.expires_at, row.reason)


def grant_of(session: Session, repo: Repo, subject: Subject) -> Grant | None:
    return as_grant(grant_row(session, repo, subject.user_id))


# ---------------------------------------------------------------------------------------------
# Terms: what a requester reads and accepts


@dataclass(frozen=True)
class Terms:
    license: ResolvedLicense
    license_text: str
    license_sha256: str
    license_version: str
    prompt: str
    prompt_sha256: str
    doc: PolicyDoc
    gated: str | None

    def as_json(self, repo: Repo) -> dict[str, Any]:
        terms = self.license.terms
        return {
            "repo": repo.repo_id,
            "gated": self.gated or False,
            "heading": self.doc.gate.heading,
            "prompt": self.prompt,
            "promptSha256": self.prompt_sha256,
            "description": self.doc.gate.description,
            "buttonContent": self.doc.gate.button_content,
            "fields": [f.model_dump(mode="json") for f in self.doc.gate.fields],
            "license": {
                "id": self.license.id,
                "name": self.license.name,
                "link": self.license.link,
                "known": self.license.known,
                "version": self.license_version,
                "sha256": self.license_sha256,
                "text": self.license_text,
                "terms": None if terms is None else {
                    "commercial_use": terms.commercial_use,
                    "user_threshold": terms.user_threshold,
                    "field_of_use_restrictions": list(terms.field_of_use_restrictions),
                    "train_on_outputs": terms.train_on_outputs,
                    "attribution": terms.attribution,
                    "derivative_naming": terms.derivative_naming,
                    "osi_approved": terms.osi_approved,
                },
            },
            "eligibility": self.doc.eligibility.model_dump(mode="json", exclude_defaults=True),
            "tiers": [
                {"name": t.name, "components": list(t.components), "review": t.review or self.gated or "manual",
                 "grant_days": t.grant_days or self.doc.grant_days, "description": t.description}
                for t in self.doc.tiers
            ],
            "defaultTier": compile_rules(self.doc).default_tier,
        }


def _license_file(session: Session, store: BlobStore, repo: Repo) -> str | None:
    commit = repos.resolve_revision(session, repo, repos.DEFAULT_BRANCH)
    files = repos.commit_files(session, commit)
    for name in LICENSE_FILES:
        state = files.get(name)
        if state is not None and state.size <= 1024 * 1024:
            try:
                return store.read_bytes(state.sha256).decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None


def terms(session: Session, store: BlobStore, repo: Repo) -> Terms:
    doc = stored_doc(repo)
    commit = repos.resolve_revision(session, repo, repos.DEFAULT_BRANCH)
    card = dict(commit.card_data or {})
    if doc.license:
        card["license"] = doc.license
    resolved = license_from_card(card)
    text, sha, version = license_text_for_acceptance(resolved, _license_file(session, store, repo))
    prompt = doc.gate.prompt or DEFAULT_PROMPT
    return Terms(resolved, text, sha, version, prompt, hashlib.sha256(prompt.encode()).hexdigest(), doc, repo.gated)


# ---------------------------------------------------------------------------------------------
# Requests


def _requestable(repo: Repo, doc: PolicyDoc) -> None:
    if not repo.gated and not doc.tiers:
        raise NothingToRequest(f"{repo.repo_id} is not gated and has no access tiers: download it directly.")


def _pick_tier(repo: Repo, doc: PolicyDoc, wanted: str | None) -> str | None:
    if not doc.tiers:
        if wanted:
            raise BadRequest(f"{repo.repo_id} has no access tiers; leave out the tier.")
        return None
    default = compile_rules(doc).default_tier
    names = [t.name for t in doc.tiers]
    requestable = [n for n in names if n != default]
    if wanted is None:
        if len(requestable) == 1:
            return requestable[0]
        raise BadRequest(f"Name the tier you ask for: one of {', '.join(requestable)}.")
    if wanted not in names:
        raise BadRequest(f"Unknown tier {wanted!r}; the tiers of {repo.repo_id} are {', '.join(names)}.")
    if wanted == default:
        raise BadRequest(f"Tier {wanted!r} is open to everyone who can see the repo; nothing to request.")
    return wanted


def _review_mode(repo: Repo, doc: PolicyDoc, tier: str | None) -> str:
    for t in doc.tiers:
        if t.name == tier and t.review:
            return t.review
    return repo.gated or "manual"


def _grant_days(doc: PolicyDoc, tier: str | None) -> int | None:
    for t in doc.tiers:
        if t.name == tier and t.grant_days:
            return t.grant_days
    return doc.grant_days


@dataclass(frozen=True)
class RequestOutcome:
    row: AccessRequest
    refusal: str | None = None


def request_access(
    session: Session,
    store: BlobStore,
    repo: Repo,
    subject: Subject,
    *,
    fields: dict[str, Any],
    tier: str | None,
    accept_license: bool,
    license_sha256: str | None,
    ip: str | None,
    geo_country: str | None = None,
    now: datetime | None = None,
) -> RequestOutcome:
    now = now or utcnow()
    doc = stored_doc(repo)
    _requestable(repo, doc)
    user = session.get(User, subject.user_id)
    if user is None:
        raise NotFound("Your account no longer exists.")
    chosen = _pick_tier(repo, doc, tier)
    row = grant_row(session, repo, user.id)
    if row is not None:
        active = row.status == "accepted" and (row.expires_at is None or row.expires_at > now)
        if active and (chosen is None or chosen == row.tier):
            raise AlreadyRequested(f"You already have access to {repo.repo_id}"
                                   f"{f' ({row.tier} tier)' if row.tier else ''}.")
        if row.status == "pending":
            raise AlreadyRequested(f"Your request for {repo.repo_id} is already pending review "
                                   f"(since {row.created_at:%Y-%m-%d %H:%M} UTC).")
    problems = validate_form(doc.gate, fields)
    if problems:
        raise BadRequest("The access form is incomplete: " + "; ".join(problems) + ".")
    current = terms(session, store, repo)
    if not accept_license:
        raise LicenseNotAccepted(
            f"Read the terms of {repo.repo_id} (`releasehub access terms {repo.repo_id}` or GET "
            f"/api/models/{repo.repo_id}/access-terms) and accept them: --accept-license."
        )
    if license_sha256 != current.license_sha256:
        raise LicenseChanged(
            "The license text you accepted is not the current one "
            f"(current sha256 {current.license_sha256[:12]}, version {current.license_version}): read it again "
            "and accept the current text."
        )
    if row is None:
        row = AccessRequest(request_id=uuid.uuid4().hex, repo_id=repo.id, user_id=user.id)
        session.add(row)
    row.status = "pending"
    row.tier = chosen
    row.fields = dict(fields) or None
    row.license_id = current.license.id
    row.license_version = current.license_version
    row.license_sha256 = current.license_sha256
    row.prompt_sha256 = current.prompt_sha256
    row.ip = ip
    row.created_at = now
    row.decided_at = row.decided_by = row.reason = row.expires_at = None
    row.revoked = False
    applicant = Applicant(fields, user.email, user.email_verified, geo_country)
    row.country = declared_country(applicant) or geo_country
    session.flush()
    details = {"request_id": row.request_id, "user": user.name, "tier": chosen, "license": current.license.id,
               "license_version": current.license_version, "license_sha256": current.license_sha256,
               "prompt_sha256": current.prompt_sha256, "fields": row.fields, "country": row.country}
    emit(session, "access.requested", repo, actor=user.name, ip=ip, details=details)
    refusal = check_eligibility(doc.eligibility, applicant, now.date())
    if refusal is not None:
        _decide(session, repo, row, user, "rejected", f"Not eligible ({refusal.rule}): {refusal.message}",
                f"releasehub:eligibility:{refusal.rule}", now)
        return RequestOutcome(row, row.reason)
    if _review_mode(repo, doc, chosen) == "auto":
        _decide(session, repo, row, user, "accepted", None, "releasehub:auto", now)
    return RequestOutcome(row)


def _decide(session: Session, repo: Repo, row: AccessRequest, user: User, status: str, reason: str | None,
            actor: str, now: datetime, expires_at: datetime | None = None, tier: str | None = None) -> None:
    previous = row.status
    doc = stored_doc(repo)
    if tier is not None:
        row.tier = _pick_tier(repo, doc, tier)
    row.status = status
    row.decided_at = now
    row.decided_by = actor
    row.reason = reason if status == "rejected" else None
    if status == "accepted":
        days = _grant_days(doc, row.tier)
        row.expires_at = expires_at or (now + timedelta(days=days) if days else None)
        row.revoked = False
    else:
        row.expires_at = None
    row.revoked = status == "rejected" and previous == "accepted"
    session.flush()
    if status == "accepted":
        action = "access.accepted"
    elif status == "rejected":
        action = "access.revoked" if row.revoked else "access.rejected"
    else:
        action = "access.cancelled"
    emit(session, action, repo, actor=actor, details={
        "request_id": row.request_id, "user": user.name, "previous": previous, "tier": row.tier,
        "reason": row.reason, "expires_at": row.expires_at.isoformat() if row.expires_at else None,
    })


def _find_request(session: Session, repo: Repo, user: str | None, request_id: str | None) -> tuple[AccessRequest, User]:
    query = select(AccessRequest, User).join(User, User.id == AccessRequest.user_id).where(
        AccessRequest.repo_id == repo.id)
    if request_id:
        query = query.where(AccessRequest.request_id == request_id)
    elif user:
        query = query.where(User.name == user)
    else:
        raise BadRequest("Name the request: send `user` or `requestId`.")
    found = session.execute(query).first()
    if found is None:
        who = f"user {user!r}" if user else f"id {request_id!r}"
        raise NotFound(f"No access request from {who} on {repo.repo_id}.")
    return found[0], found[1]


def handle_request(session: Session, repo: Repo, actor: str, *, user: str | None, request_id: str | None,
                   status: str, reason: str | None = None, expires_at: datetime | None = None,
                   tier: str | None = None, now: datetime | None = None) -> AccessRequest:
    """The Hub's `user-access-request/handle`: accept, reject (with a reason) or cancel (back to pending)."""
    now = now or utcnow()
    if status not in STATUSES:
        raise BadRequest(f"Unknown status {status!r}: use accepted, rejected or pending.")
    if reason is not None and status != "rejected":
        raise BadRequest("A rejection reason goes with status 'rejected' only.")
    if expires_at is not None and expires_at <= now:
        raise BadRequest("The expiry must lie in the future.")
    row, requester = _find_request(session, repo, user, request_id)
    if status == row.status and status != "accepted":
        raise BadRequest(f"The request of {requester.name} is already {status}.")
    if status == "pending":
        row.created_at = row.created_at or now
    _decide(session, repo, row, requester, status, reason, actor, now, expires_at, tier)
    return row


def grant_access(session: Session, repo: Repo, actor: str, user: str, *, tier: str | None = None,
                 expires_at: datetime | None = None, now: datetime | None = None) -> AccessRequest:
    """The Hub's `user-access-request/grant`: access without a request."""
    now = now or utcnow()
    if expires_at is not None and expires_at <= now:
        raise BadRequest("The expiry must lie in the future.")  # as handle_request: no grant born expired
    doc = stored_doc(repo)
    if not repo.gated and not doc.tiers:
        raise NothingToRequest(f"{repo.repo_id} is not gated and has no access tiers: there is nothing to grant.")
    target = get_user(session, user)
    chosen = _pick_tier(repo, doc, tier)
    row = grant_row(session, repo, target.id)
    if row is not None and row.status == "accepted" and (row.expires_at is None or row.expires_at > now) \
            and (chosen is None or row.tier == chosen):
        raise BadRequest(f"{user} already has access to {repo.repo_id}.")
    if row is None:
        row = AccessRequest(request_id=uuid.uuid4().hex, repo_id=repo.id, user_id=target.id, status="pending",
                            created_at=now)
        session.add(row)
        session.flush()
    row.tier = chosen
    _decide(session, repo, row, target, "accepted", None, actor, now, expires_at)
    return row


def list_requests(session: Session, repo: Repo, status: str, *, offset: int = 0,
                  limit: int = 1000) -> list[tuple[AccessRequest, User]]:
    if status not in STATUSES:
        raise BadRequest(f"Unknown status {status!r}: use pending, accepted or rejected.")
    rows = session.execute(
        select(AccessRequest, User).join(User, User.id == AccessRequest.user_id)
        .where(AccessRequest.repo_id == repo.id, AccessRequest.status == status)
        .order_by(AccessRequest.created_at, AccessRequest.id).offset(offset).limit(limit)
    ).all()
    return [(r[0], r[1]) for r in rows]


def status_of(row: AccessRequest | None, now: datetime) -> str:
    if row is None:
        return "none"
    if row.status == "accepted" and row.expires_at is not None and row.expires_at <= now:
        return "expired"
    if row.status == "rejected" and row.revoked:
        return "revoked"
    return row.status


def on_new_revision(session: Session, repo: Repo, commit: Any, branch: str, author: Subject) -> list[str]:
    """A commit landed on `branch`: record it, tell webhooks, and apply what it changed of the card's
    policy (on main only). Returns warnings for the committer."""
    emit(session, "revision.pushed", repo, actor=author.name, revision=commit.oid, webhook_event="repo.revision",
         details={"branch": branch, "title": commit.title})
    if branch != repos.DEFAULT_BRANCH:
        return []
    parent = repos.find_commit(session, repo, commit.parent_oid) if commit.parent_oid else None
    card = repos.find_file(session, commit, CARD_FILENAME)
    if card is None or (parent is not None and repos.find_file(session, parent, CARD_FILENAME) == card):
        return []  # README.md did not change (or is gone): the stored policy stays as it is
    changed = card_changes(repo, commit.card_data, utcnow())
    if changed:
        problem = apply_card(session, repo, changed, author)
        if problem and not commit.card_error:
            commit.card_error = problem
            session.flush()
    return card_warnings(commit.card_data)
