"""Metering: every gateway request becomes an audit event and a line of daily usage.

Like download events, they are written in batches by a background thread (one transaction per
batch: the audit events and the usage upserts together), so the request path never waits for
a database write. Usage rows are upserted with `INSERT ... ON CONFLICT DO UPDATE` adding to the
counters, so replicas writing the same (key, repo, day) never lose an increment.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from releasehub.auditlog import EventData, record_many
from releasehub.db import Database

from .models import UsageDaily

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """One request through the gateway, as metered."""

    key_pk: int
    key_id: str
    user: str
    repo_pk: int
    repo: str
    endpoint: str
    status: int
    outcome: str                   # "ok" | "refused" | "error"
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    stream: bool
    reason: str | None = None      # why refused or failed
    estimated: bool = False        # usage estimated (the stream was cut before its usage chunk)
    prompt: Any = None             # kept only when the releaser turned store_prompts on
    at: datetime | None = None

    def event(self) -> EventData:
        details: dict[str, Any] = {
            "key": self.key_id, "endpoint": self.endpoint, "status": self.status, "outcome": self.outcome,
            "tokens_in": self.prompt_tokens, "tokens_out": self.completion_tokens,
            "latency_ms": round(self.latency_ms, 1), "stream": self.stream,
        }
        if self.reason:
            details["reason"] = self.reason
        if self.estimated:
            details["usage_estimated"] = True
        if self.prompt is not None:
            details["prompt"] = self.prompt
        return EventData("gateway.request", actor=self.user, repo=self.repo, details=details,
                         at=self.at or datetime.now(timezone.utc))


def _upsert_usage(session: Session, calls: list[Call]) -> None:
    totals: dict[tuple[int, int, date], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for c in calls:
        day = (c.at or datetime.now(timezone.utc)).astimezone(timezone.utc).date()
        row = totals[(c.key_pk, c.repo_pk, day)]
        row[0] += 1
        row[1] += c.outcome == "refused"
        row[2] += c.outcome == "error"
        row[3] += c.prompt_tokens
        row[4] += c.completion_tokens
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for (key_pk, repo_pk, day), (requests, refused, errors, tokens_in, tokens_out) in totals.items():
        stmt = insert(UsageDaily).values(key_pk=key_pk, repo_id=repo_pk, day=day, requests=requests, refused=refused,
                                         errors=errors, prompt_tokens=tokens_in, completion_tokens=tokens_out)
        excluded = stmt.excluded
        session.execute(stmt.on_conflict_do_update(
            index_elements=["key_pk", "repo_id", "day"],
            set_={"requests": UsageDaily.requests + excluded.requests,
                  "refused": UsageDaily.refused + excluded.refused,
                  "errors": UsageDaily.errors + excluded.errors,
                  "prompt_tokens": UsageDaily.prompt_tokens + excluded.prompt_tokens,
                  "completion_tokens": UsageDaily.completion_tokens + excluded.completion_tokens},
        ))


class CallRecorder:
    """Queues calls; a thread writes them in batches. `add` never blocks the caller."""

    def __init__(self, database: Database, flush_interval: float = 0.5, max_batch: int = 500,
                 max_queue: int = 100_000) -> None:
        self._db = database
        self._interval = flush_interval
        self._max_batch = max_batch
        self._queue: queue.Queue[Call] = queue.Queue(maxsize=max_queue)
        self._pending: list[Call] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="gateway-metering", daemon=True)
        self._thread.start()

    def add(self, call: Call) -> None:
        try:
            self._queue.put_nowait(call)
        except queue.Full:
            self.dropped += 1
            log.error("gateway call not metered: the queue is full (%s %s)", call.key_id, call.repo)

    def flush(self) -> None:
        with self._lock:
            while True:
                try:
                    while len(self._pending) < self._max_batch:
                        self._pending.append(self._queue.get_nowait())
                except queue.Empty:
                    pass
                if not self._pending:
                    return
                with self._db.session() as session:
                    record_many(session, [c.event() for c in self._pending])
                    _upsert_usage(session, self._pending)
                self._pending = []

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - kept for the next round
                log.exception("writing gateway usage failed; retrying")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self.flush()
        except Exception:  # noqa: BLE001
            log.exception("writing the last gateway usage failed")
