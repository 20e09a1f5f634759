"""Access request rows: one per (repo, user), moved through pending → accepted / rejected.

The history of every change lives in the audit log; this row is the current state that
`decide` reads (status, tier, expiry) and the Hub review API lists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from releasehub.db import Base, UTCDateTime, utcnow


class AccessRequest(Base):
    __tablename__ = "access_requests"
    __table_args__ = (
        UniqueConstraint("repo_id", "user_id"),
        Index("ix_access_requests_repo_status", "repo_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(32), unique=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # pending | accepted | rejected
    tier: Mapped[str | None] = mapped_column(String(40), default=None)
    fields: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # What the requester accepted: the exact license text (sha256 + version) and the gate prompt.
    license_id: Mapped[str | None] = mapped_column(String(100), default=None)
    license_version: Mapped[str | None] = mapped_column(String(64), default=None)
    license_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    prompt_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)  # when (re-)requested
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    decided_by: Mapped[str | None] = mapped_column(String(96), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)  # shown to the requester
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked: Mapped[bool] = mapped_column(default=False)
