"""Requesting and reviewing access; the release policy; auth-check.

The review routes are the Hub's (`user-access-request/{status|handle|grant}`), so that
`HfApi.list_pending_access_requests`, `accept_access_request`, `reject_access_request`,
`cancel_access_request` and `grant_access` work unchanged. Requesting access from code has no
Hub API; releasehub's is `POST /api/models/{repo}/access-request` after reading
`GET /api/models/{repo}/access-terms`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from releasehub.access import Permission
from releasehub.db import as_utc
from releasehub.access import service as access_service
from releasehub.access.decide import effective_tier
from releasehub.access.models import AccessRequest
from releasehub.accounts.models import User
from releasehub.errors import BadRequest, Ineligible
from releasehub.hubapi import shapes
from releasehub.hubapi.deps import RepoContext, client_ip, repo_access, wake_dispatcher
from releasehub.text import require_json_text, require_text

router = APIRouter(tags=["access"])

PAGE = 500


def _request_json(row: AccessRequest, user: User | None, now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {
        "requestId": row.request_id,
        "status": row.status,
        "state": access_service.status_of(row, now),
        "timestamp": shapes.iso(row.created_at),
        "fields": row.fields,
        "tier": row.tier,
        "reason": row.reason,
        "decidedAt": shapes.iso(row.decided_at) if row.decided_at else None,
        "decidedBy": row.decided_by,
        "expiresAt": shapes.iso(row.expires_at) if row.expires_at else None,
        "license": {"id": row.license_id, "version": row.license_version, "sha256": row.license_sha256},
        "promptSha256": row.prompt_sha256,
        "country": row.country,
    }
    if user is not None:
        out["user"] = {"user": user.name, "fullname": user.fullname, "email": user.email,
                       "emailVerified": user.email_verified, "avatarUrl": "", "type": "user"}
    return out


# ------------------------------------------------------------------ auth-check


@router.get("/api/models/{namespace}/{name}/auth-check")
def auth_check(ctx: RepoContext = Depends(repo_access(Permission.REPO_DOWNLOAD))) -> dict[str, Any]:
    """200 when the subject may download (gate passed); 401/403 GatedRepo or 404 otherwise."""
    return {"access": True, "reason": ctx.decide(Permission.REPO_DOWNLOAD).reason}


@router.get("/api/models/{namespace}/{name}/auth-check/write")
def auth_check_write(ctx: RepoContext = Depends(repo_access(Permission.REPO_WRITE))) -> dict[str, Any]:
    return {"access": True, "reason": ctx.decide(Permission.REPO_WRITE).reason}


# ------------------------------------------------------------------ requesting


@router.get("/api/models/{namespace}/{name}/access-terms")
def access_terms(ctx: RepoContext = Depends(repo_access(Permission.REPO_READ))) -> dict[str, Any]:
    """What a requester reads and accepts: the gate form, the license text with its sha256, the rules."""
    return access_service.terms(ctx.session, ctx.services.store, ctx.repo).as_json(ctx.repo)


class AccessRequestBody(BaseModel):
    fields: dict[str, Any] = Field(default_factory=dict, max_length=100)
    tier: str | None = Field(default=None, max_length=40)
    acceptLicense: bool = False
    licenseSha256: str | None = Field(default=None, max_length=64)


@router.post("/api/models/{namespace}/{name}/access-request")
def request_access(
    request: Request, body: AccessRequestBody, ctx: RepoContext = Depends(repo_access(Permission.ACCESS_REQUEST))
) -> dict[str, Any]:
    for label, answer in body.fields.items():
        require_text(label, f"The access form field name {label!r}")
        require_json_text(answer, f"The answer to access form field {label!r}")
    geo = getattr(request.app.state, "geoip", None)
    ip = client_ip(request)
    outcome = access_service.request_access(
        ctx.session, ctx.services.store, ctx.repo, ctx.subject, fields=body.fields, tier=body.tier,
        accept_license=body.acceptLicense, license_sha256=body.licenseSha256, ip=ip,
        geo_country=geo.country(ip) if geo is not None and ip else None, now=ctx.now,
    )
    payload = _request_json(outcome.row, None, ctx.now)
    ctx.session.commit()
    wake_dispatcher(request)
    if outcome.refusal is not None:
        # The refusal is recorded (the releaser sees it, the requester may correct and ask again).
        raise Ineligible(outcome.refusal)
    return payload


@router.get("/api/models/{namespace}/{name}/access-request")
def my_access(ctx: RepoContext = Depends(repo_access(Permission.ACCESS_REQUEST))) -> dict[str, Any]:
    """Where the subject stands: their request, and whether they may download now."""
    row = access_service.grant_row(ctx.session, ctx.repo, ctx.subject.user_id)
    download = ctx.decide(Permission.REPO_DOWNLOAD)
    out: dict[str, Any] = {
        "repo": ctx.repo.repo_id,
        "gated": ctx.repo.gated or False,
        "state": access_service.status_of(row, ctx.now),
        "canDownload": download.allowed,
        "message": download.reason,
        "tier": effective_tier(ctx.policy, ctx.grant, ctx.now),
    }
    if row is not None:
        out["request"] = _request_json(row, None, ctx.now)
    return out


# ------------------------------------------------------------------ reviewing (Hub API)


@router.get("/api/models/{namespace}/{name}/user-access-request/{status}")
def list_access_requests(
    request: Request,
    response: Response,
    status: Literal["pending", "accepted", "rejected"],
    cursor: int = Query(0, ge=0, le=2**31 - 1),
    ctx: RepoContext = Depends(repo_access(Permission.REPO_REVIEW)),
) -> list[dict[str, Any]]:
    rows = access_service.list_requests(ctx.session, ctx.repo, status, offset=cursor, limit=PAGE + 1)
    if len(rows) > PAGE:
        rows = rows[:PAGE]
        query = {**dict(request.query_params), "cursor": str(cursor + PAGE)}
        response.headers["Link"] = f'<{str(request.url).split("?", 1)[0]}?{urlencode(query)}>; rel="next"'
    return [_request_json(row, user, ctx.now) for row, user in rows]


class HandleBody(BaseModel):
    user: str | None = Field(default=None, max_length=96)
    requestId: str | None = Field(default=None, max_length=32)
    status: Literal["pending", "accepted", "rejected"]
    rejectionReason: str | None = Field(default=None, max_length=2000)
    tier: str | None = Field(default=None, max_length=40)
    expiresAt: datetime | None = None


@router.post("/api/models/{namespace}/{name}/user-access-request/handle")
def handle_access_request(
    request: Request, body: HandleBody, ctx: RepoContext = Depends(repo_access(Permission.REPO_REVIEW))
) -> dict[str, Any]:
    if body.user and body.requestId:
        raise BadRequest("Send `user` or `requestId`, not both.")
    row = access_service.handle_request(
        ctx.session, ctx.repo, ctx.subject.name or "", user=body.user, request_id=body.requestId,
        status=body.status, reason=body.rejectionReason, expires_at=as_utc(body.expiresAt), tier=body.tier,
        now=ctx.now,
    )
    payload = _request_json(row, None, ctx.now)
    ctx.session.commit()
    wake_dispatcher(request)
    return payload


class GrantBody(BaseModel):
    user: str = Field(max_length=96)
    tier: str | None = Field(default=None, max_length=40)
    expiresAt: datetime | None = None


@router.post("/api/models/{namespace}/{name}/user-access-request/grant")
def grant_access(
    request: Request, body: GrantBody, ctx: RepoContext = Depends(repo_access(Permission.REPO_REVIEW))
) -> dict[str, Any]:
    row = access_service.grant_access(ctx.session, ctx.repo, ctx.subject.name or "", body.user, tier=body.tier,
                                      expires_at=as_utc(body.expiresAt), now=ctx.now)
    payload = _request_json(row, None, ctx.now)
    ctx.session.commit()
    wake_dispatcher(request)
    return payload


# ------------------------------------------------------------------ policy


@router.get("/api/models/{namespace}/{name}/policy")
def get_policy(ctx: RepoContext = Depends(repo_access(Permission.REPO_WRITE))) -> dict[str, Any]:
    """The whole policy, stages included (which would reveal hidden files, hence the team only)."""
    return access_service.effective_doc(ctx.repo)


@router.put("/api/models/{namespace}/{name}/policy")
def put_policy(
    request: Request, body: dict[str, Any] = Body(...), ctx: RepoContext = Depends(repo_access(Permission.REPO_ADMIN))
) -> dict[str, Any]:
    """Replaces the policy with the document sent (validated whole: on error nothing changes)."""
    require_json_text(body, "the policy document")
    result = access_service.set_policy(ctx.session, ctx.repo, body, ctx.subject.name, ctx.now)
    ctx.session.commit()
    wake_dispatcher(request)
    return result
