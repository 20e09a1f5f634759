"""Metering: every gateway request becomes an audit event and a line of daily usage.

Like download events, they are written in batches by a background thread (`BatchRecorder`, one
transaction per batch: the audit events and the usage upserts together), so the request path never waits for
a database write. Usage rows are upserted with `INSERT ... ON CONFLICT DO UPDATE` adding to the
counters, so replicas writing the same (key, repo, day) never lose an increment.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from releasehub.auditlog import BatchRecorder, EventData, record_many
from releasehub.db import Database

from .models import UsageDaily


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


def write_calls(session: Session, calls: list[Call]) -> None:
    """One batch: the audit events and the usage counters, in the same transaction."""
    record_many(session, [c.event() for c in calls])
    _upsert_usage(session, calls)


class CallRecorder(BatchRecorder[Call]):
    """Queues calls; a thread writes them in batches. `add` never blocks the caller."""

    def __init__(self, database: Database, **options: Any) -> None:
        super().__init__(database, write_calls, name="gateway-metering", **options)
