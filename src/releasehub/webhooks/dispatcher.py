"""Sends queued webhook deliveries: one background thread per server process, on every replica.

Each round claims the deliveries that are due (pending, `next_attempt_at` passed, no live
lease) one by one with a conditional UPDATE that sets `lease_until`: on PostgreSQL the second of
two concurrent UPDATEs of a row waits for the first, re-reads the row and no longer matches, so
two dispatchers never both send a delivery. A dispatcher that dies while sending leaves a lease
that expires, and the delivery is tried again (its attempt is counted when claimed).

A 2xx answer marks the delivery delivered. Anything else (another status, a redirect, which is
never followed, a timeout, a refused connection) records the error and schedules another try
after `backoff_base * 2**(attempts - 1)` seconds (1 s, 2 s, 4 s ... at most `backoff_cap`), until
`max_attempts` tries have failed: then it is "failed" for good.

What a receiver gets: a POST whose body is the JSON payload
``{"event", "repo", "occurred_at", "id", "data"}`` ("repo" is null for a server-wide event such as
``audit.checkpoint``) and these headers::

    Content-Type: application/json
    User-Agent: releasehub-webhooks
    X-Releasehub-Event: access.requested
    X-Releasehub-Delivery: 7d0c6f0e-...          (the payload's "id"; the same on every retry)
    X-Releasehub-Timestamp: 1735689600           (Unix seconds when this attempt was sent)
    X-Releasehub-Signature: sha256=<64 hex digits>

The signature is HMAC-SHA256, keyed with the webhook's secret, over the timestamp, a dot, and
the raw body bytes: ``hmac(secret, f"{timestamp}.".encode() + body)``. To verify, a receiver

1. recomputes it from the raw body it received (before any JSON parsing) and the timestamp
   header, and compares it with the signature header using ``hmac.compare_digest``;
2. rejects timestamps more than 5 minutes from its own clock (a replayed old request);
3. may drop a delivery id it has already processed (a retry after a lost answer).

For example, in Python::

    expected = "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                                    hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(expected, signature) and abs(time.time() - int(timestamp)) <= 300
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from collections.abc import Sequence
from typing import Any

import httpx
from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.sql.elements import ColumnElement

from releasehub.db import Database, utcnow
from releasehub.webhooks.models import DELIVERED, FAILED, PENDING, Webhook, WebhookDelivery
from releasehub.webhooks.targets import Network, TargetRefused, check_target

log = logging.getLogger("releasehub.webhooks")

USER_AGENT = "releasehub-webhooks"
MAX_ERROR_LENGTH = 2000


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The X-Releasehub-Signature value: "sha256=" + hex HMAC-SHA256 of f"{timestamp}." + body."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass(frozen=True)
class _Claimed:
    """A delivery this dispatcher holds the lease of, with what sending it needs."""

    id: str
    event: str
    payload: dict[str, Any]
    attempts: int  # including this one
    lease_until: datetime
    url: str
    secret: str
    active: bool


@dataclass(frozen=True)
class _Outcome:
    delivered: bool
    response_status: int | None = None
    error: str | None = None


class Dispatcher:
    """Sends due webhook deliveries from a daemon thread; `deliver_due` runs one round in the caller."""

    def __init__(
        self,
        database: Database,
        *,
        poll_interval: float = 0.5,
        timeout: float = 10,
        max_attempts: int = 8,
        backoff_base: float = 1.0,
        backoff_cap: float = 600.0,
        concurrency: int = 8,
        lease_seconds: float | None = None,
        allowed_networks: Sequence[Network] = (),
    ) -> None:
        self.database = database
        self.allowed_networks = tuple(allowed_networks)
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.concurrency = concurrency
        # Long enough to cover one send (connect, write and read each have `timeout`), so that a
        # lease expires only when its dispatcher died.
        self.lease = timedelta(seconds=lease_seconds if lease_seconds is not None else max(60.0, 6 * timeout))
        # Redirects are never followed: a receiver must not be able to point the signed request
        # somewhere its owner did not register.
        self._client = httpx.Client(timeout=timeout, follow_redirects=False,
                                    headers={"User-Agent": USER_AGENT})
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="releasehub-webhook")
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ the thread

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="releasehub-webhook-dispatcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run the next round now rather than after the poll interval (after a commit that queued some)."""
        self._wake.set()

    def stop(self) -> None:
        """Let the round in progress finish, end the thread, and release the HTTP client."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=3 * self.timeout + 5)
            if self._thread.is_alive():
                log.warning("webhook dispatcher did not stop within %.0f s", 3 * self.timeout + 5)
            self._thread = None
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True)
        self._client.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                handled = self.deliver_due()
            except Exception:
                log.exception("webhook dispatch round failed; trying again in %s s", self.poll_interval)
                handled = 0
            if handled >= self.concurrency and not self._stopping.is_set():
                continue  # a full round: more may be due already
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    # ------------------------------------------------------------------ one round

    def deliver_due(self, now: datetime | None = None) -> int:
        """Claim up to `concurrency` due deliveries, send them in parallel, record the outcomes.

        Returns how many deliveries this call attempted (delivered or not).
        """
        now = (now or utcnow()).astimezone(timezone.utc)
        started = time.monotonic()
        claimed = self._claim(now)
        if len(claimed) == 1:
            self._deliver(claimed[0], now, started)
        elif claimed:
            futures = [self._pool.submit(self._deliver, item, now, started) for item in claimed]
            for future in futures:
                future.result()
        return len(claimed)

    def _deliver(self, item: _Claimed, now: datetime, started: float) -> None:
        try:
            outcome = self._send(item) if item.active else _Outcome(False, None, "the webhook is inactive")
            # `now` moved on by the time the send took (a test may pass a `now` of its own).
            self._record(item, outcome, now + timedelta(seconds=time.monotonic() - started))
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly; it is tried again when its lease expires",
                          item.id)

    def _due(self, now: datetime) -> ColumnElement[bool]:
        return and_(
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until <= now),
        )

    def _claim(self, now: datetime) -> list[_Claimed]:
        with self.database.session() as session:
            candidates = session.scalars(
                select(WebhookDelivery.id).where(self._due(now))
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(2 * self.concurrency)
            ).all()
        lease_until = now + self.lease
        claimed: list[_Claimed] = []
        for delivery_id in candidates:
            if len(claimed) >= self.concurrency or self._stopping.is_set():
                break
            # One short transaction per claim: no transaction ever holds locks on several rows,
            # so concurrent dispatchers cannot deadlock.
            with self.database.session() as session:
                result = session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == delivery_id, self._due(now))
                    .values(lease_until=lease_until, attempts=WebhookDelivery.attempts + 1)
                    .execution_options(synchronize_session=False)
                )
                if _rowcount(result) != 1:
                    continue  # another dispatcher took it first
                row = session.execute(
                    select(WebhookDelivery.event, WebhookDelivery.payload, WebhookDelivery.attempts,
                           Webhook.url, Webhook.secret, Webhook.active)
                    .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                    .where(WebhookDelivery.id == delivery_id)
                ).one_or_none()
            if row is not None:
                claimed.append(_Claimed(delivery_id, row.event, row.payload, row.attempts, lease_until,
                                        row.url, row.secret, row.active))
        return claimed

    def _send(self, item: _Claimed) -> _Outcome:
        body = json.dumps(item.payload, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Releasehub-Event": item.event,
            "X-Releasehub-Delivery": item.id,
            "X-Releasehub-Timestamp": timestamp,
            "X-Releasehub-Signature": sign(item.secret, timestamp, body),
        }
        try:
            # Again at every delivery: the name may resolve elsewhere now than when it was registered.
            check_target(item.url, self.allowed_networks)
        except TargetRefused as exc:
            return _Outcome(False, None, f"not sent: {exc}")
        try:
            with self._client.stream("POST", item.url, content=body, headers=headers) as response:
                if response.is_success:
                    return _Outcome(True, response.status_code)
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    return _Outcome(False, response.status_code,
                                    f"HTTP {response.status_code} redirect to {location!r} not followed: "
                                    "webhooks never follow redirects; register the final URL")
                # The answer's body is not kept: a repo admin could otherwise point a webhook at
                # a service inside the server's network and read its answers from the delivery log.
                return _Outcome(False, response.status_code,
                                f"HTTP {response.status_code} {response.reason_phrase}".rstrip())
        except httpx.HTTPError as exc:
            return _Outcome(False, None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    def _backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.backoff_cap, self.backoff_base * 2 ** max(0, attempts - 1)))

    def _record(self, item: _Claimed, outcome: _Outcome, now: datetime) -> None:
        values: dict[str, Any] = {"lease_until": None, "response_status": outcome.response_status}
        if outcome.delivered:
            values.update(status=DELIVERED, delivered_at=now, last_error=None)
        else:
            values["last_error"] = (outcome.error or "failed")[:MAX_ERROR_LENGTH]
            if item.attempts >= self.max_attempts:
                values["status"] = FAILED
                log.warning("webhook delivery %s to %s failed for good after %d attempts: %s",
                            item.id, item.url, item.attempts, values["last_error"])
            else:
                values["next_attempt_at"] = now + self._backoff(item.attempts)
                log.info("webhook delivery %s to %s failed (attempt %d of %d), retrying: %s",
                         item.id, item.url, item.attempts, self.max_attempts, values["last_error"])
        with self.database.session() as session:
            # Only while the lease is still ours: if it expired and another dispatcher took the
            # delivery, that one records the outcome.
            result = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == item.id, WebhookDelivery.lease_until == item.lease_until)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(result) != 1:
                log.warning("webhook delivery %s: lease lost before its outcome was recorded", item.id)


def _rowcount(result: object) -> int:
    return result.rowcount if isinstance(result, CursorResult) else -1

