"""The `audit.checkpoint` webhook event: a signed checkpoint of the audit head, on a schedule.

Every `RELEASEHUB_AUDIT_CHECKPOINT_SECONDS` each server process runs `publish_checkpoint`: it
locks the audit head (as an appender does, so replicas take turns and nothing is appended
meanwhile), and queues a checkpoint (`releasehub.auditlog.checkpoint`) for each webhook
subscribed to `audit.checkpoint` by a server admin whose last checkpoint names another head.
So a head that did not move sends nothing, and several replicas send one checkpoint per head.
The delivery's `data` is the checkpoint itself: a receiver can store it as a file and pass it
to `releasehub audit verify --checkpoint FILE`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from releasehub.auditlog import checkpoint as checkpoints
from releasehub.db import Database
from releasehub.webhooks import service

log = logging.getLogger("releasehub.webhooks")

EVENT = "audit.checkpoint"


def publish_checkpoint(session: Session, key: Callable[[], checkpoints.SigningKey],
                       at: datetime | None = None) -> int:
    """Queue a signed checkpoint of the head for each subscriber that has not had this head yet.

    In the caller's transaction; returns how many deliveries were queued. `key` is called only
    when there is something to sign (so that a server without subscribers never creates a key).
    """
    # The lock first: a SQLite transaction that read before it writes may be refused its write.
    seq, digest = checkpoints.head(session, lock=True)
    subscribers = service.server_subscribers(session, EVENT)
    due = []
    for webhook in subscribers:
        last = service.last_payload(session, webhook, EVENT)
        data = last.get("data") if last else None
        if isinstance(data, dict) and data.get("seq") == seq and data.get("hash") == digest:
            continue
        due.append(webhook)
    if not due:  # no subscribers, or all of them have this head already
        return 0
    signed = checkpoints.sign(key(), seq, digest, at)
    return service.enqueue_server_event(session, due, EVENT, signed.to_dict())


class CheckpointSchedule:
    """A daemon thread that runs `publish_checkpoint` at start and then every `interval` seconds."""

    def __init__(self, database: Database, key_file: Path, interval: float,
                 on_queued: Callable[[], None] | None = None) -> None:
        self.database = database
        self.key_file = key_file
        self.interval = interval
        self.on_queued = on_queued
        self._key: checkpoints.SigningKey | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def key(self) -> checkpoints.SigningKey:
        if self._key is None:
            self._key = checkpoints.SigningKey.load_or_create(self.key_file)
        return self._key

    def run_once(self) -> int:
        with self.database.session() as session:
            queued = publish_checkpoint(session, self.key)
        if queued:
            log.info("queued %d audit checkpoint(s)", queued)
            if self.on_queued is not None:
                self.on_queued()
        return queued

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="releasehub-audit-checkpoints",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except checkpoints.CheckpointError as exc:  # a head that does not match its event, a bad key
                log.error("audit checkpoint not sent: %s; trying again in %s s", exc, self.interval)
            except Exception:
                log.exception("audit checkpoint round failed; trying again in %s s", self.interval)
            self._stop.wait(self.interval)
