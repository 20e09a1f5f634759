"""Registering webhooks, and queueing their deliveries in the caller's transaction.

`enqueue` only inserts rows (the outbox): nothing is sent before the transaction that describes
the change commits, and nothing is sent at all when it rolls back. `dispatcher.Dispatcher` sends
the rows later.
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from releasehub.accounts.models import User
from releasehub.db import utcnow
from releasehub.errors import BadRequest, NotFound
from releasehub.repos.models import Repo
from releasehub.webhooks.models import PENDING, Webhook, WebhookDelivery
from releasehub.webhooks.targets import Network, TargetRefused, check_target

# The events a webhook may subscribe to, each with what it tells the receiver.
EVENTS: dict[str, str] = {
    "access.requested": "someone requested access to the repo (pending review, or granted at once)",
    "access.accepted": "an access request was accepted, or access was granted directly",
    "access.rejected": "an access request was rejected",
    "access.revoked": "a granted access was revoked",
    "access.cancelled": "a requester cancelled their access request",
    "repo.revision": "a new commit landed on a branch",
    "policy.changed": "the release policy, visibility or gate of the repo changed",
}

# Server-wide events: they name no repo, and only a server admin may subscribe a webhook to them
# (on any repo the admin manages; the repo only holds the registration). Deliveries go to
# webhooks whose registrant is still a server admin when the event is queued. Never part of the
# default subscription: they are asked for by name.
SERVER_EVENTS: dict[str, str] = {
    "audit.checkpoint": "a signed checkpoint of the audit chain's head (seq, hash, time, key id), sent every "
                        "RELEASEHUB_AUDIT_CHECKPOINT_SECONDS when the head moved; keep it to pass to "
                        "`releasehub audit verify --checkpoint`",
}

MAX_WEBHOOKS_PER_REPO = 25
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 128
MAX_URL_LENGTH = 2000


def _iso(value: datetime) -> str:
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _check_url(url: str) -> str:
    url = url.strip()
    if not url:
        raise BadRequest("The webhook URL is empty; "
                         "pass the http:// or https:// URL that should receive the events.")
    if len(url) > MAX_URL_LENGTH:
        raise BadRequest(f"The webhook URL is {len(url)} characters long; use one of at most "
                         f"{MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise BadRequest("The webhook URL contains spaces or control characters; percent-encode them.")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a port that is not a number in range
    except ValueError as exc:
        raise BadRequest(f"The webhook URL {url!r} cannot be parsed ({exc}); "
                         "pass a URL such as https://example.org/hooks/releasehub.") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise BadRequest(f"The webhook URL {url!r} is not an http or https URL; "
                         "pass a URL such as https://example.org/hooks/releasehub.")
    if not parts.hostname:
        raise BadRequest(f"The webhook URL {url!r} names no host; "
                         "pass a URL such as https://example.org/hooks/releasehub.")
    return url


def _check_events(events: Iterable[str] | None, server_admin: bool = False) -> list[str]:
    if events is None:
        return list(EVENTS)
    wanted = list(dict.fromkeys(events))  # without duplicates, in the order given
    if not wanted:
        raise BadRequest("No events given: name at least one of " + ", ".join(EVENTS)
                         + ", or leave events out to receive all of them.")
    unknown = [name for name in wanted if name not in EVENTS and name not in SERVER_EVENTS]
    if unknown:
        raise BadRequest(f"Unknown webhook event(s): {', '.join(map(repr, unknown))}. "
                         "Known events: " + ", ".join([*EVENTS, *SERVER_EVENTS]) + ".")
    server_wide = [name for name in wanted if name in SERVER_EVENTS]
    if server_wide and not server_admin:
        raise BadRequest(f"{', '.join(server_wide)} is a server-wide event: only a server admin may "
                         "subscribe a webhook to it.")
    return wanted


def _check_secret(secret: str | None) -> str:
    if secret is None:
        return secrets.token_hex(32)
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH or not secret.isprintable() \
            or not secret.isascii():
        raise BadRequest(f"The webhook secret must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} printable "
                         "ASCII characters; leave it out to have the server generate one.")
    return secret


def register(
    session: Session,
    repo: Repo,
    url: str,
    events: Iterable[str] | None = None,
    secret: str | None = None,
    *,
    created_by: str,
    allowed_networks: Sequence[Network] = (),
    server_admin: bool = False,
) -> Webhook:
    """A new active webhook on `repo` (all repo events unless `events` names some); flushed, not committed.

    Its host must resolve to public addresses, or to networks in `allowed_networks` (targets.py).
    `events` may name a server-wide event (`SERVER_EVENTS`) only when `server_admin` (the
    registrant is a server admin)."""
    url = _check_url(url)
    try:
        check_target(url, allowed_networks)
    except TargetRefused as exc:
        raise BadRequest(f"The webhook URL {url!r} was refused: {exc}.") from None
    wanted = _check_events(events, server_admin)
    secret = _check_secret(secret)
    count = len(list_webhooks(session, repo))
    if count >= MAX_WEBHOOKS_PER_REPO:
        raise BadRequest(f"{repo.repo_id} already has {count} webhooks, the most a repo may have; "
                         "remove one with `releasehub webhooks remove` first.")
    webhook = Webhook(repo_id=repo.id, url=url, secret=secret, events=wanted, created_by=created_by,
                      created_at=utcnow(), active=True)
    session.add(webhook)
    session.flush()
    return webhook


def list_webhooks(session: Session, repo: Repo) -> list[Webhook]:
    return list(session.scalars(select(Webhook).where(Webhook.repo_id == repo.id).order_by(Webhook.id)))


def get_webhook(session: Session, repo: Repo, webhook_id: int) -> Webhook:
    """The webhook `webhook_id` of `repo`; NotFound when it is missing or belongs to another repo."""
    webhook = session.get(Webhook, webhook_id)
    if webhook is None or webhook.repo_id != repo.id:
        raise NotFound(f"Webhook {webhook_id} not found on {repo.repo_id}; "
                       f"list its webhooks with `releasehub webhooks list {repo.repo_id}`.")
    return webhook


def remove(session: Session, repo: Repo, webhook_id: int) -> None:
    """Delete the webhook and, with it, its deliveries (sent or not)."""
    webhook = get_webhook(session, repo, webhook_id)
    # Deleted explicitly as well as by ON DELETE CASCADE: SQLite enforces the cascade only with
    # PRAGMA foreign_keys on, which a connection made outside `make_engine` may lack.
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id))
    session.delete(webhook)
    session.flush()


def list_deliveries(session: Session, repo: Repo, webhook_id: int, limit: int = 50) -> list[WebhookDelivery]:
    """The newest deliveries of one webhook, newest first."""
    webhook = get_webhook(session, repo, webhook_id)
    return list(session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id).limit(limit)
    ))


def enqueue(session: Session, repo_id: int, repo_name: str, event: str, data: dict[str, Any]) -> int:
    """Queue `event` for every active webhook of the repo subscribed to it, in the caller's transaction.

    Returns how many deliveries were queued. They are sent only once the caller commits.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}; add it to releasehub.webhooks.service.EVENTS")
    webhooks = session.scalars(
        select(Webhook).where(Webhook.repo_id == repo_id, Webhook.active.is_(True)).order_by(Webhook.id)
    ).all()
    subscribed = [webhook for webhook in webhooks if event in (webhook.events or [])]
    return _queue(session, subscribed, repo_name, event, data)


def _queue(session: Session, webhooks: Sequence[Webhook], repo_name: str | None, event: str,
           data: dict[str, Any]) -> int:
    if not webhooks:
        return 0
    now = utcnow()
    # Plain JSON now (datetimes become strings), so that what is stored is exactly what is sent.
    plain_data = json.loads(json.dumps(data, default=str))
    for webhook in webhooks:
        delivery_id = str(uuid.uuid4())
        payload = {"event": event, "repo": repo_name, "occurred_at": _iso(now), "id": delivery_id,
                   "data": plain_data}
        session.add(WebhookDelivery(
            id=delivery_id, webhook_id=webhook.id, event=event, payload=payload, status=PENDING, attempts=0,
            next_attempt_at=now, created_at=now,
        ))
    return len(webhooks)


def _check_server_event(event: str) -> None:
    if event not in SERVER_EVENTS:
        raise ValueError(f"{event!r} is not a server-wide event; see webhooks.service.SERVER_EVENTS")


def server_subscribers(session: Session, event: str) -> list[Webhook]:
    """The active webhooks subscribed to the server-wide `event` whose registrant is a server admin now."""
    _check_server_event(event)
    webhooks = session.scalars(
        select(Webhook).join(User, User.name == Webhook.created_by)
        .where(Webhook.active.is_(True), User.is_admin.is_(True)).order_by(Webhook.id)
    ).all()
    return [webhook for webhook in webhooks if event in (webhook.events or [])]


def last_payload(session: Session, webhook: Webhook, event: str) -> dict[str, Any] | None:
    """The payload of the newest delivery of `event` queued for `webhook` (sent or not), if any."""
    payload = session.scalar(
        select(WebhookDelivery.payload)
        .where(WebhookDelivery.webhook_id == webhook.id, WebhookDelivery.event == event)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(1)
    )
    return payload if isinstance(payload, dict) else None


def enqueue_server_event(session: Session, webhooks: Sequence[Webhook], event: str,
                         data: dict[str, Any]) -> int:
    """Queue the server-wide `event` for `webhooks` (from `server_subscribers`), in the caller's transaction.

    Its payload's "repo" is null: a server-wide event names no repo."""
    _check_server_event(event)
    return _queue(session, webhooks, None, event, data)
