"""The gateway's administration over HTTP: what `releasehub hosted` and `releasehub keys` call.

Who may do what:
- attach, hook and detach (`/api/models/{repo}/hosted`, `.../hosted/hook`): the server will connect to
  the URL given (an engine, a moderation service), so it is the operator's decision: server admins
  with a write token (`Permission.SERVER_ADMIN`). The repo is still looked up through `decide`, so a
  repo the caller may not see answers as a missing one.
- disable and enable (the kill switch, `.../hosted/disable|enable`): the releasing team's admins
  (`repo_access(REPO_ADMIN)`; server admins are admins of every namespace, see `namespace_role`).
- keys: any signed-in subject may call the routes (`ACCOUNT_READ`, as `/api/gateway/usage`), and each
  repo a request names is judged there: creating a key needs the admin role (`decide(REPO_ADMIN)`)
  on every repo it names, or a server admin; listing shows the caller's own keys, a repo's keys to its
  admins, anybody's to a server admin; revoking takes the key's user, an admin of one of its repos or a
  server admin, and anyone else's key id answers exactly as a missing one.

A key's secret is in the answer that creates it and never again. Every change is an audit event
(`gateway.attached`, `gateway.disabled`, `gateway.key_created`, ...) written by the service, with the
caller's name as the actor.
"""

from __future__ import annotations

from typing import Any, Callable

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from releasehub.access import Permission, decide
from releasehub.access import service as access_service
from releasehub.access.decide import decide_subject
from releasehub.accounts.service import Subject
from releasehub.db import utcnow
from releasehub.errors import BadRequest, NotFound
from releasehub.hubapi.deps import (
    RepoContext,
    get_services,
    get_session,
    get_subject,
    raise_denied,
    repo_access,
    repo_context,
    requires,
)
from releasehub.repos.models import Repo
from releasehub.services import Services

from . import service as gw
from .models import ApiKey, HostedModel

router = APIRouter(tags=["gateway"])

REPO_ID = Field(min_length=3, max_length=200)
MAX_DAYS = 3650  # ten years: beyond that a date overflows and "never" is the honest choice


def server_admin_repo() -> Callable[..., RepoContext]:
    """For operator routes under /{namespace}/{name}: a server admin first (before the repo is looked
    up, so nobody else learns whether it exists), then the repo through `decide`."""

    def dependency(
        namespace: str,
        name: str,
        session: Session = Depends(get_session),
        subject: Subject = Depends(get_subject),
        services: Services = Depends(get_services),
    ) -> RepoContext:
        raise_denied(decide_subject(subject, Permission.SERVER_ADMIN))
        return repo_context(session, subject, services, namespace, name, Permission.REPO_READ)

    dependency.permission = Permission.SERVER_ADMIN  # type: ignore[attr-defined]
    dependency.checks_repo = True  # type: ignore[attr-defined]
    return dependency


class AttachBody(BaseModel):
    backend: str = Field(min_length=1, max_length=2000)
    model: str | None = Field(default=None, max_length=200)
    apiKeyEnv: str | None = Field(default=None, max_length=200)
    hostedOnly: bool = False
    timeout: float = Field(default=120.0, gt=0, le=3600)


class HookBody(BaseModel):
    blocklist: list[str] | None = Field(default=None, max_length=200)  # None: unchanged; []: cleared
    moderationUrl: str | None = Field(default=None, max_length=2000)  # None: unchanged; "": removed
    storePrompts: bool | None = None


class SwitchBody(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


class KeyBody(BaseModel):
    user: str = Field(min_length=1, max_length=96)
    repos: list[str] = Field(min_length=1, max_length=100)
    tier: str = Field(default=gw.DEFAULT_TIER, min_length=1, max_length=40)
    expiresInDays: int | None = Field(default=None, ge=1, le=MAX_DAYS)
    name: str | None = Field(default=None, max_length=100)


def _hosted_json(repo: Repo, hosted: HostedModel) -> dict[str, Any]:
    return {"repo": repo.repo_id, "backend": hosted.backend_url, "model": hosted.engine_model,
            "apiKeyEnv": hosted.api_key_env, "timeout": hosted.timeout_s, "enabled": hosted.enabled,
            "disabledReason": hosted.disabled_reason, "blocklist": hosted.blocklist or [],
            "moderationUrl": hosted.moderation_url, "storePrompts": hosted.store_prompts}


# ------------------------------------------------------------------------------------- hosted


@router.post("/api/models/{namespace}/{name}/hosted")
def attach(body: AttachBody, ctx: RepoContext = Depends(server_admin_repo())) -> dict[str, Any]:
    """Serve the repo through /v1 with an OpenAI-compatible engine, or re-point it (server admins)."""
    hosted = gw.attach(ctx.session, ctx.repo, backend_url=body.backend, engine_model=body.model,
                       api_key_env=body.apiKeyEnv, hosted_only=body.hostedOnly, actor=ctx.subject.name or "",
                       timeout_s=body.timeout)
    out = {**_hosted_json(ctx.repo, hosted), "hostedOnly": body.hostedOnly}
    ctx.session.commit()
    return out


@router.put("/api/models/{namespace}/{name}/hosted/hook")
def set_hook(body: HookBody, ctx: RepoContext = Depends(server_admin_repo())) -> dict[str, Any]:
    """The policy hook checked before forwarding: a blocklist and/or a moderation service (server admins)."""
    hosted = gw.set_hook(ctx.session, ctx.repo, blocklist=body.blocklist, moderation_url=body.moderationUrl,
                         store_prompts=body.storePrompts, actor=ctx.subject.name or "")
    out = _hosted_json(ctx.repo, hosted)
    ctx.session.commit()
    return out


@router.delete("/api/models/{namespace}/{name}/hosted")
def detach(ctx: RepoContext = Depends(server_admin_repo())) -> dict[str, Any]:
    """Stop serving the repo through /v1 (server admins); its keys stay."""
    gw.detach(ctx.session, ctx.repo, actor=ctx.subject.name or "")
    ctx.session.commit()
    return {"repo": ctx.repo.repo_id, "detached": True}


def _switch(ctx: RepoContext, enabled: bool, reason: str | None) -> dict[str, Any]:
    hosted = gw.set_enabled(ctx.session, ctx.repo, enabled, actor=ctx.subject.name or "", reason=reason)
    out = _hosted_json(ctx.repo, hosted)
    ctx.session.commit()
    return out


@router.post("/api/models/{namespace}/{name}/hosted/disable")
def disable(body: SwitchBody | None = None,
            ctx: RepoContext = Depends(repo_access(Permission.REPO_ADMIN))) -> dict[str, Any]:
    """The kill switch: every call to the repo answers 503 (with the reason) from the next request."""
    return _switch(ctx, False, body.reason if body else None)


@router.post("/api/models/{namespace}/{name}/hosted/enable")
def enable(ctx: RepoContext = Depends(repo_access(Permission.REPO_ADMIN))) -> dict[str, Any]:
    """Serve the repo again after a disable."""
    return _switch(ctx, True, None)


# --------------------------------------------------------------------------------------- keys


def _is_server_admin(subject: Subject) -> bool:
    return decide_subject(subject, Permission.SERVER_ADMIN).allowed


def _admin_repo(session: Session, subject: Subject, services: Services, repo_id: str) -> Repo:
    """The repo, when the subject administers it (a hidden repo answers as a missing one)."""
    namespace, _, name = repo_id.partition("/")
    if not namespace or not name or "/" in name:
        raise BadRequest(f"Give the repository as NAMESPACE/NAME, not {repo_id[:200]!r}.")
    return repo_context(session, subject, services, namespace, name, Permission.REPO_ADMIN).repo


def _revocable(session: Session, subject: Subject, key_id: str) -> ApiKey:
    """The key, when the subject may revoke it; anyone else's key answers as a missing one."""
    key = gw.find_key(session, key_id)
    if key.user_id == subject.user_id or _is_server_admin(subject):
        return key
    now = utcnow()
    if any(decide(subject, access_service.repo_policy(repo), Permission.REPO_ADMIN, now).allowed
           for repo in gw.key_repos(session, key)):
        return key
    # Word for word what `find_key` says of a key that does not exist.
    raise NotFound(f"API key {key_id!r} not found: `releasehub keys list` shows the keys.")


@router.post("/api/gateway/keys")
def create_key(body: KeyBody, session: Session = Depends(get_session), services: Services = Depends(get_services),
               subject: Subject = Depends(requires(Permission.ACCOUNT_READ))) -> dict[str, Any]:
    """Create an API key for a user on hosted repos the caller administers; the secret is answered once."""
    if not _is_server_admin(subject):
        for repo_id in body.repos:
            _admin_repo(session, subject, services, repo_id)
    new = gw.create_key(session, body.user, body.repos, body.tier, actor=subject.name or "",
                        expires_in_days=body.expiresInDays, name=body.name)
    out = {**gw.key_json(session, new.key), "secret": new.secret}
    session.commit()
    return out


@router.get("/api/gateway/keys")
def list_keys(user: str | None = Query(default=None, max_length=96),
              repo: str | None = Query(default=None, max_length=200),
              session: Session = Depends(get_session), services: Services = Depends(get_services),
              subject: Subject = Depends(requires(Permission.ACCOUNT_READ))) -> list[dict[str, Any]]:
    """API keys, never their secrets: your own; `repo=` every key of a repo you administer; a server
    admin's: everybody's (`user=` one user's)."""
    target = _admin_repo(session, subject, services, repo) if repo is not None else None
    if target is None and not _is_server_admin(subject):
        if user is not None and user != subject.name:
            raise_denied(decide_subject(subject, Permission.SERVER_ADMIN))
        user = subject.name
    return gw.list_keys(session, user=user, repo=target)


@router.delete("/api/gateway/keys/{key_id}")
def revoke_key(key_id: str = Path(min_length=1, max_length=200), reason: str | None = Query(None, max_length=500),
               session: Session = Depends(get_session),
               subject: Subject = Depends(requires(Permission.ACCOUNT_READ))) -> dict[str, Any]:
    """Revoke a key (its user, an admin of one of its repos, a server admin): refused from the next request."""
    key = gw.revoke_key(session, _revocable(session, subject, key_id).key_id,
                        actor=subject.name or "", reason=reason)
    out = gw.key_json(session, key)
    session.commit()
    return out
