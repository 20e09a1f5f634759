"""`/api/models/{repo}/webhooks`: register, list, remove, and inspect deliveries (admin role).

The signing secret is answered once, when the webhook is registered; listings never show it.
Adding and removing a webhook are audit events (`webhook.added`, `webhook.removed`), not webhook
events: who pointed a repo's events at which URL is for the audit log.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from releasehub.access import Permission
from releasehub.events import emit
from releasehub.hubapi.deps import RepoContext, repo_access
from releasehub.hubapi.shapes import iso
from releasehub.webhooks import service
from releasehub.webhooks.models import Webhook, WebhookDelivery
from releasehub.webhooks.targets import parse_networks

router = APIRouter(tags=["webhooks"])


class WebhookBody(BaseModel):
    url: str = Field(max_length=service.MAX_URL_LENGTH)
    events: list[str] | None = Field(default=None,
                                     max_length=4 * (len(service.EVENTS) + len(service.SERVER_EVENTS)))
    secret: str | None = Field(default=None, max_length=service.MAX_SECRET_LENGTH)


def _webhook_json(webhook: Webhook) -> dict[str, Any]:
    return {"id": webhook.id, "url": webhook.url, "events": webhook.events, "active": webhook.active,
            "createdBy": webhook.created_by, "createdAt": iso(webhook.created_at)}


def _delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id, "event": delivery.event, "status": delivery.status, "attempts": delivery.attempts,
        "lastError": delivery.last_error, "responseStatus": delivery.response_status,
        "createdAt": iso(delivery.created_at),
        "nextAttemptAt": iso(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "deliveredAt": iso(delivery.delivered_at) if delivery.delivered_at else None,
    }


@router.post("/api/models/{namespace}/{name}/webhooks")
def add_webhook(body: WebhookBody, ctx: RepoContext = Depends(repo_access(Permission.REPO_ADMIN))
                ) -> dict[str, Any]:
    """Register a receiver of the repo's events; the answer shows its signing secret, this once."""
    webhook = service.register(ctx.session, ctx.repo, body.url, body.events, body.secret,
                               created_by=ctx.subject.name or "",
                               allowed_networks=parse_networks(ctx.services.settings.webhook_allowed_networks),
                               server_admin=ctx.subject.is_admin)
    emit(ctx.session, "webhook.added", ctx.repo, actor=ctx.subject.name,
         details={"webhook": webhook.id, "url": webhook.url, "events": webhook.events})
    out = {**_webhook_json(webhook), "secret": webhook.secret}
    ctx.session.commit()
    return out


@router.get("/api/models/{namespace}/{name}/webhooks")
def list_webhooks(ctx: RepoContext = Depends(repo_access(Permission.REPO_ADMIN))) -> list[dict[str, Any]]:
    """The repo's webhooks, without their secrets."""
    return [_webhook_json(w) for w in service.list_webhooks(ctx.session, ctx.repo)]


@router.delete("/api/models/{namespace}/{name}/webhooks/{webhook_id}")
def remove_webhook(
    webhook_id: int = Path(ge=1, le=2**31 - 1),
    ctx: RepoContext = Depends(repo_access(Permission.REPO_ADMIN)),
) -> dict[str, Any]:
    """Remove a webhook; its deliveries, sent or queued, go with it."""
    webhook = service.get_webhook(ctx.session, ctx.repo, webhook_id)
    url = webhook.url
    service.remove(ctx.session, ctx.repo, webhook_id)
    emit(ctx.session, "webhook.removed", ctx.repo, actor=ctx.subject.name,
         details={"webhook": webhook_id, "url": url})
    ctx.session.commit()
    return {"deleted": webhook_id}


@router.get("/api/models/{namespace}/{name}/webhooks/{webhook_id}/deliveries")
def list_deliveries(
    webhook_id: int = Path(ge=1, le=2**31 - 1),
    limit: int = Query(50, ge=1, le=500),
    ctx: RepoContext = Depends(repo_access(Permission.REPO_ADMIN)),
) -> list[dict[str, Any]]:
    """The newest deliveries of one webhook, newest first: status, attempts, last error."""
    return [_delivery_json(d) for d in service.list_deliveries(ctx.session, ctx.repo, webhook_id, limit)]
