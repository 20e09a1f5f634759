"""Who is calling and what: the API key, then the repo its `model` names.

Both are read with two prepared statements on one bare connection (no ORM), through a cache that
holds while the database's change signal stays the same (SQLite's data_version, PostgreSQL's
change_counter; see `Database.data_version`): the key (revoked and expired keys stop here, so a
revocation holds from the next request on every replica) and the repo with its engine, which the key must list and the key's user must still be
allowed to read (`decide`). The repo's policy is compiled once per (repo, policy version) in this
process, and so are the tier limits derived from it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, bindparam, select, type_coerce
from sqlalchemy.engine import Connection

from releasehub.access import Permission, RepoPolicy, decide
from releasehub.access import service as access_service
from releasehub.access.policy import TierApi
from releasehub.accounts.models import Membership, Org, User
from releasehub.accounts.subject import Subject
from releasehub.db import VersionedCache, as_utc, utcnow
from releasehub.repos.models import Ref, Repo
from releasehub.repos.service import DEFAULT_BRANCH

from .errors import GatewayError
from .models import ApiKey, ApiKeyRepo, HostedModel
from .ratelimit import Limits
from .service import hash_secret, tier_api, tiers_allowing


@dataclass(frozen=True)
class KeyContext:
    key_pk: int
    key_id: str
    tier: str
    subject: Subject
    repo_pks: tuple[int, ...]


@dataclass(frozen=True)
class Hosted:
    """The engine behind a repo, as attached by its releaser."""

    backend_url: str
    engine_model: str
    api_key_env: str | None
    timeout_s: float
    store_prompts: bool
    blocklist: tuple[str, ...]
    moderation_url: str | None


@dataclass(frozen=True)
class TierTerms:
    """A tier's API limits in one policy version, with what refusals name."""

    api: TierApi
    limits: Limits
    tiers_logprobs: tuple[str, ...]
    tiers_echo: tuple[str, ...]


@dataclass(frozen=True)
class Target:
    repo_pk: int
    repo_id: str
    hosted: Hosted
    terms: TierTerms
    head_commit: int | None = None  # the commit (row id) at the head of main: whose tokenizer counts prompts

    @property
    def api(self) -> TierApi:
        return self.terms.api


_KEY_LOOKUP = (
    select(ApiKey.id, ApiKey.key_id, ApiKey.tier, ApiKey.expires_at, ApiKey.revoked_at, ApiKey.revoked_reason,
           User.id, User.name, User.is_admin, Org.name, Membership.role)
    .join(User, User.id == ApiKey.user_id)
    .outerjoin(Membership, Membership.user_id == User.id)
    .outerjoin(Org, Org.id == Membership.org_id)
    .where(ApiKey.secret_hash == bindparam("secret_hash"))
)
_KEY_REPOS = select(ApiKeyRepo.repo_id).where(ApiKeyRepo.key_pk == bindparam("key_pk"))
# The policy comes as text and is parsed only when this process has not compiled its version yet.
_TARGET_LOOKUP = (
    select(Repo.id, Repo.namespace, Repo.name, Repo.visibility, Repo.gated, Repo.policy_version,
           type_coerce(Repo.policy, Text), HostedModel.id, HostedModel.enabled, HostedModel.disabled_reason,
           HostedModel.backend_url, HostedModel.engine_model, HostedModel.api_key_env, HostedModel.timeout_s,
           HostedModel.store_prompts, HostedModel.blocklist, HostedModel.moderation_url, Ref.commit_id)
    .join(ApiKeyRepo, (ApiKeyRepo.repo_id == Repo.id) & (ApiKeyRepo.key_pk == bindparam("key_pk")))
    .outerjoin(HostedModel, HostedModel.repo_id == Repo.id)
    .outerjoin(Ref, (Ref.repo_id == Repo.id) & (Ref.kind == "branch") & (Ref.name == DEFAULT_BRANCH))
    .where(Repo.namespace == bindparam("namespace"), Repo.name == bindparam("name"))
)

_terms_cache: dict[tuple[int, int, str], TierTerms | None] = {}
_terms_lock = threading.Lock()


# The rows of the lookups, kept while the database's change signal stays the same (see
# `Database.data_version`: SQLite's data_version, PostgreSQL's change_counter), so that a revocation
# or a kill switch committed anywhere is seen on the next request, as without a cache.
_reads = VersionedCache()


class _Reader:
    """Runs the lookups' statements through the cache, on a connection opened only on a miss."""

    def __init__(self, database: Any) -> None:
        self._database = database
        self._version = database.data_version()
        self._conn: Connection | None = None

    def __call__(self, name: str, statement: Any, params: dict[str, Any]) -> Sequence[Any]:
        key = (name, *params.values())
        cached = _reads.get(self._version, key)
        if cached is not None:
            return cached
        if self._conn is None:
            self._conn = self._database.engine.connect()
        rows = self._conn.execute(statement, params).all()
        _reads.put(self._version, key, rows)
        return rows

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _key_context(rows: Sequence[Any]) -> KeyContext:
    if not rows:
        raise GatewayError(401, "Incorrect API key provided.", code="invalid_api_key")
    key_pk, key_id, tier, expires_at, revoked_at, revoked_reason, user_id, user_name, is_admin, _, _ = rows[0]
    if revoked_at is not None:
        why = f": {revoked_reason}" if revoked_reason else ""
        raise GatewayError(401, f"API key {key_id} was revoked{why}.", code="invalid_api_key")
    expires = as_utc(expires_at)
    if expires is not None and expires <= utcnow():
        raise GatewayError(401, f"API key {key_id} expired on {expires:%Y-%m-%d}; ask the releaser for a new one.",
                           code="invalid_api_key")
    roles = {row[9]: row[10] for row in rows if row[9] is not None}
    subject = Subject(user_id=user_id, name=user_name, is_admin=is_admin, scope="read", org_roles=roles)
    return KeyContext(key_pk, key_id, tier, subject, ())


def load_key(conn: Connection, secret: str, *, with_repos: bool = False) -> KeyContext:
    """The key of `secret` with the repos it lists (`/v1/models`), read without the cache."""
    ctx = _key_context(conn.execute(_KEY_LOOKUP, {"secret_hash": hash_secret(secret)}).all())
    if not with_repos:
        return ctx
    repo_pks = tuple(conn.execute(_KEY_REPOS, {"key_pk": ctx.key_pk}).scalars())
    return KeyContext(ctx.key_pk, ctx.key_id, ctx.tier, ctx.subject, repo_pks)


def _terms(repo_pk: int, version: int, doc: Any, tier: str) -> TierTerms | None:
    key = (repo_pk, version, tier)
    if key in _terms_cache:
        return _terms_cache[key]
    api = tier_api(doc, tier)
    terms = None if api is None else TierTerms(
        api, Limits(requests_per_minute=api.requests_per_minute, tokens_per_minute=api.tokens_per_minute,
                    requests_per_day=api.requests_per_day, concurrency=api.concurrency),
        tuple(tiers_allowing(doc, "logprobs")), tuple(tiers_allowing(doc, "echo")))
    with _terms_lock:
        if len(_terms_cache) > 10_000:
            _terms_cache.clear()
        _terms_cache[key] = terms
    return terms


def _target(read: _Reader, ctx: KeyContext, model: str) -> Target:
    unknown = GatewayError(404, f"The model `{model}` does not exist or you do not have access to it.",
                           code="model_not_found", param="model")
    namespace, _, name = model.partition("/")
    rows = read("target", _TARGET_LOOKUP, {"key_pk": ctx.key_pk, "namespace": namespace, "name": name}) \
        if name else None
    if not rows:
        raise unknown
    row = rows[0]
    (repo_pk, namespace, name, visibility, gated, version, raw, hosted_pk, enabled, disabled_reason, backend_url,
     engine_model, api_key_env, timeout_s, store_prompts, blocklist, moderation_url, head_commit) = row
    rules, doc = access_service.compiled_policy(repo_pk, version, raw)
    policy = RepoPolicy(model, namespace, visibility, gated, rules)
    if hosted_pk is None or not decide(ctx.subject, policy, Permission.REPO_READ, utcnow()).allowed:
        raise unknown
    if not enabled:
        raise GatewayError(503, f"{model} is switched off by its releaser"
                                f"{': ' + disabled_reason if disabled_reason else ''}.",
                           type="service_unavailable", code="model_disabled")
    terms = _terms(repo_pk, version, doc, ctx.tier)
    if terms is None:
        raise GatewayError(403, f"Your key's tier {ctx.tier!r} no longer exists on {model}; ask the releaser for a "
                                "new key.", type="permission_error", code="tier_not_found")
    hosted = Hosted(backend_url, engine_model, api_key_env, timeout_s, bool(store_prompts), tuple(blocklist or ()),
                    moderation_url)
    return Target(repo_pk, model, hosted, terms, head_commit)


def lookup(database: Any, secret: str, model: str) -> tuple[KeyContext, Target]:
    """The key, then the repo it calls: two indexed reads on one connection (or none, cached)."""
    read = _Reader(database)
    try:
        ctx = _key_context(read("key", _KEY_LOOKUP, {"secret_hash": hash_secret(secret)}))
        return ctx, _target(read, ctx, model)
    finally:
        read.close()
