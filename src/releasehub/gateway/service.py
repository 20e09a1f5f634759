"""Hosted models and API keys: attach an engine to a repo, switch it off, issue and revoke keys.

Everything here runs in the caller's transaction and leaves an audit event (`events.emit`).
Keys are bound to one user, one or more hosted repos and a tier name; the tier's API limits
come from each repo's release policy (`tiers[].api`, else the policy's `api`), so the
releaser tunes limits with `releasehub policy set` and every key of that tier follows.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from releasehub.access import service as access_service
from releasehub.access.policy import PolicyDoc, TierApi
from releasehub.accounts.models import User
from releasehub.db import as_utc, utcnow
from releasehub.errors import BadRequest, NotFound
from releasehub.events import emit
from releasehub.repos.models import Repo
from releasehub.repos import service as repos

from .constants import DEFAULT_TIER
from .models import ApiKey, ApiKeyRepo, HostedModel

KEY_PREFIX = "rhk_"
_KEY_ID = re.compile(r"^rhk_[A-Za-z0-9]{12}$")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def load_repo(session: Session, repo_id: str) -> Repo:
    namespace, _, name = repo_id.partition("/")
    repo = repos.find_repo(session, namespace, name) if name else None
    if repo is None:
        raise NotFound(f"Repository {repo_id} not found: give NAMESPACE/NAME of an existing repo.")
    return repo


def hosted_of(session: Session, repo: Repo) -> HostedModel | None:
    return session.scalar(select(HostedModel).where(HostedModel.repo_id == repo.id))


def _check_backend(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[..." and the like: not a URL at all
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest(f"backend {url!r} is not an http(s) URL; give the engine's OpenAI base URL, "
                         "such as http://127.0.0.1:8001/v1")
    return url.rstrip("/")


def attach(session: Session, repo: Repo, *, backend_url: str, engine_model: str | None, api_key_env: str | None,
           hosted_only: bool, actor: str, timeout_s: float = 120.0) -> HostedModel:
    """Attach (or re-point) an OpenAI-compatible engine; `hosted_only` closes the weight files for good."""
    backend_url = _check_backend(backend_url)
    if api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
        raise BadRequest(f"--api-key-env {api_key_env!r} is not an environment variable name")
    if timeout_s <= 0:
        raise BadRequest("the engine timeout must be a positive number of seconds")
    hosted = hosted_of(session, repo)
    if hosted is None:
        hosted = HostedModel(repo_id=repo.id, created_by=actor, backend_url=backend_url,
                             engine_model=engine_model or repo.repo_id)
        session.add(hosted)
    hosted.backend_url = backend_url
    hosted.engine_model = engine_model or hosted.engine_model or repo.repo_id
    hosted.api_key_env = api_key_env
    hosted.timeout_s = timeout_s
    hosted.updated_at = utcnow()
    if hosted_only and not access_service.stored_doc(repo).hosted_only:
        doc = access_service.effective_doc(repo)
        access_service.set_policy(session, repo, {**doc, "hosted_only": True}, actor, source="hosted attach")
    session.flush()
    emit(session, "gateway.attached", repo, actor=actor,
         details={"backend": backend_url, "model": hosted.engine_model, "hosted_only": hosted_only})
    return hosted


def set_enabled(session: Session, repo: Repo, enabled: bool, *, actor: str, reason: str | None = None) -> HostedModel:
    """The kill switch: read on every request, so it holds from the next request on every replica."""
    hosted = hosted_of(session, repo)
    if hosted is None:
        raise NotFound(f"{repo.repo_id} has no engine attached: `releasehub hosted attach {repo.repo_id} --backend URL`")
    hosted.enabled = enabled
    hosted.disabled_reason = None if enabled else (reason or "switched off by the releaser")
    hosted.updated_at = utcnow()
    emit(session, "gateway.enabled" if enabled else "gateway.disabled", repo, actor=actor,
         details={"reason": hosted.disabled_reason})
    return hosted


def set_hook(session: Session, repo: Repo, *, blocklist: list[str] | None, moderation_url: str | None,
             store_prompts: bool | None, actor: str) -> HostedModel:
    hosted = hosted_of(session, repo)
    if hosted is None:
        raise NotFound(f"{repo.repo_id} has no engine attached: `releasehub hosted attach {repo.repo_id} --backend URL`")
    if blocklist is not None:
        for pattern in blocklist:
            try:
                re.compile(pattern)
            except (re.error, OverflowError) as exc:  # OverflowError: a repetition count too large
                raise BadRequest(f"blocklist pattern {pattern!r} is not a regular expression: {exc}") from None
        hosted.blocklist = list(blocklist) or None
    if moderation_url is not None:
        hosted.moderation_url = _check_backend(moderation_url) if moderation_url else None
    if store_prompts is not None:
        hosted.store_prompts = store_prompts
    hosted.updated_at = utcnow()
    emit(session, "gateway.hook_changed", repo, actor=actor,
         details={"blocklist": hosted.blocklist, "moderation_url": hosted.moderation_url,
                  "store_prompts": hosted.store_prompts})
    return hosted


def detach(session: Session, repo: Repo, *, actor: str) -> None:
    hosted = hosted_of(session, repo)
    if hosted is None:
        raise NotFound(f"{repo.repo_id} has no engine attached")
    session.delete(hosted)
    emit(session, "gateway.detached", repo, actor=actor)


# ---------------------------------------------------------------------------------------------
# Tiers


def tier_names(doc: PolicyDoc) -> list[str]:
    return [t.name for t in doc.tiers] or [DEFAULT_TIER]


def tier_api(doc: PolicyDoc, tier: str) -> TierApi | None:
    """The API limits of `tier` in this policy; None when the repo has no such tier."""
    for t in doc.tiers:
        if t.name == tier:
            return t.api or doc.api or TierApi()
    if not doc.tiers and tier == DEFAULT_TIER:
        return doc.api or TierApi()
    return None


def tiers_allowing(doc: PolicyDoc, what: str) -> list[str]:
    """Names of the tiers whose API allows a depth of access (`logprobs`, `echo`), for refusals."""
    names = []
    for t in doc.tiers:
        api = t.api or doc.api or TierApi()
        if getattr(api, what):
            names.append(t.name)
    return names


# ---------------------------------------------------------------------------------------------
# Keys


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    secret: str


def create_key(session: Session, user_name: str, repo_ids: list[str], tier: str, *, actor: str,
               expires_in_days: int | None = None, name: str | None = None) -> NewKey:
    user = session.scalar(select(User).where(User.name == user_name))
    if user is None:
        raise NotFound(f"User {user_name!r} not found: create it with `releasehub users create {user_name}`.")
    if not repo_ids:
        raise BadRequest("give at least one --repo NAMESPACE/NAME the key may call")
    if expires_in_days is not None and expires_in_days <= 0:
        raise BadRequest("--expires-in must be a positive number of days")
    targets = []
    for repo_id in dict.fromkeys(repo_ids):
        repo = load_repo(session, repo_id)
        if hosted_of(session, repo) is None:
            raise BadRequest(f"{repo_id} has no engine attached: `releasehub hosted attach {repo_id} --backend URL` "
                             "first.")
        doc = access_service.stored_doc(repo)
        if tier_api(doc, tier) is None:
            raise BadRequest(f"{repo_id} has no tier {tier!r}; its tiers are {', '.join(tier_names(doc))}. Define "
                             "tiers (with their `api` limits) with `releasehub policy set`.")
        targets.append(repo)
    key_id = KEY_PREFIX + secrets.token_hex(6)
    secret = f"{key_id}.{secrets.token_urlsafe(24)}"
    now = utcnow()
    key = ApiKey(key_id=key_id, secret_hash=hash_secret(secret), user_id=user.id, name=name, tier=tier,
                 created_by=actor, created_at=now,
                 expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None)
    session.add(key)
    session.flush()
    for repo in targets:
        session.add(ApiKeyRepo(key_pk=key.id, repo_id=repo.id))
        emit(session, "gateway.key_created", repo, actor=actor,
             details={"key": key_id, "user": user_name, "tier": tier,
                      "expires_at": key.expires_at.isoformat() if key.expires_at else None})
    return NewKey(key, secret)


def find_key(session: Session, key_id: str) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id.split(".", 1)[0]))
    if key is None:
        raise NotFound(f"API key {key_id!r} not found: `releasehub keys list` shows the keys.")
    return key


def key_repos(session: Session, key: ApiKey) -> list[Repo]:
    return list(session.scalars(select(Repo).join(ApiKeyRepo, ApiKeyRepo.repo_id == Repo.id)
                                .where(ApiKeyRepo.key_pk == key.id).order_by(Repo.id)))


def revoke_key(session: Session, key_id: str, *, actor: str, reason: str | None = None) -> ApiKey:
    key = find_key(session, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        key.revoked_reason = reason
        for repo in key_repos(session, key):
            emit(session, "gateway.key_revoked", repo, actor=actor, details={"key": key.key_id, "reason": reason})
    return key


def key_json(session: Session, key: ApiKey, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    user = session.get(User, key.user_id)
    created = as_utc(key.created_at)
    expires = as_utc(key.expires_at)
    state = ("revoked" if key.revoked_at is not None else
             "expired" if expires is not None and expires <= now else "active")
    return {"key": key.key_id, "user": user.name if user else None, "tier": key.tier, "name": key.name,
            "repos": [r.repo_id for r in key_repos(session, key)], "state": state,
            "created_at": created.isoformat() if created else None,
            "expires_at": expires.isoformat() if expires else None,
            "revoked_reason": key.revoked_reason}


def list_keys(session: Session, *, user: str | None = None, repo: Repo | None = None) -> list[dict[str, Any]]:
    query = select(ApiKey).order_by(ApiKey.id)
    if user is not None:
        query = query.join(User, User.id == ApiKey.user_id).where(User.name == user)
    if repo is not None:
        query = query.join(ApiKeyRepo, ApiKeyRepo.key_pk == ApiKey.id).where(ApiKeyRepo.repo_id == repo.id)
    return [key_json(session, k) for k in session.scalars(query)]


def valid_key_id(value: str) -> bool:
    return bool(_KEY_ID.match(value))
