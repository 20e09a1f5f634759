"""One call for something that happened to a repo: an audit event and, where subscribed, webhooks.

Both are written in the caller's transaction, so an event exists exactly when the change it
describes was committed (the webhook deliveries are an outbox the dispatcher sends later).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from releasehub import auditlog as audit
from releasehub.repos.models import Repo
from releasehub.webhooks import service as webhooks

# Audit actions that are also webhook events (same names).
WEBHOOK_EVENTS = frozenset({
    "access.requested", "access.accepted", "access.rejected", "access.revoked", "access.cancelled",
    "policy.changed",
})


def emit(
    session: Session,
    action: str,
    repo: Repo,
    *,
    actor: str | None,
    revision: str | None = None,
    path: str | None = None,
    ip: str | None = None,
    details: dict[str, Any] | None = None,
    webhook_event: str | None = None,
) -> None:
    audit.record(session, action, actor=actor, repo=repo.repo_id, revision=revision, path=path, ip=ip,
                 details=details)
    event = webhook_event or (action if action in WEBHOOK_EVENTS else None)
    if event is not None:
        data = {"actor": actor, **(details or {})}
        if revision is not None:
            data["revision"] = revision
        webhooks.enqueue(session, repo.id, repo.repo_id, event, data)
