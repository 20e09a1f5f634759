"""The cache of computed access profiles, one row per repo revision and view.

A profile depends on the commit and on which files the asking subject may see and read
(stages, tiers and gates hide or close files), so the key is the commit plus a digest of that
view. Rows are immutable: a new commit or a new view gets a new row; the profile version in the
key retires rows computed by an older releasehub.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from releasehub.db import Base, UTCDateTime, utcnow


class CachedProfile(Base):
    __tablename__ = "access_profiles"
    __table_args__ = (UniqueConstraint("repo_id", "commit_sha", "view_digest", "version",
                                       name="uq_access_profiles_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)
    commit_sha: Mapped[str] = mapped_column(String(64))
    view_digest: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
