"""Gateway tables: engines attached to repos, API keys, and daily usage.

A key's secret is stored only as its sha256 (like access tokens); the key id (`rhk_` plus 12
characters, the part before the dot of the secret) is what people and logs name it by.
Revocation and the per-repo switch are columns read on every request, so they take effect on
the next request on every replica.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from releasehub.db import Base, UTCDateTime, utcnow


class HostedModel(Base):
    __tablename__ = "gateway_hosted"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), unique=True)
    backend_url: Mapped[str] = mapped_column(String(2000))       # the engine's OpenAI base URL, ending in /v1
    engine_model: Mapped[str] = mapped_column(String(300))       # the model name the engine expects
    api_key_env: Mapped[str | None] = mapped_column(String(200), default=None)  # env var with the engine's key
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)  # the kill switch
    disabled_reason: Mapped[str | None] = mapped_column(Text, default=None)
    timeout_s: Mapped[float] = mapped_column(Float, default=120.0)
    store_prompts: Mapped[bool] = mapped_column(Boolean, default=False)
    blocklist: Mapped[list[str] | None] = mapped_column(JSON, default=None)  # regular expressions
    moderation_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    created_by: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    __tablename__ = "gateway_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(100), default=None)
    tier: Mapped[str] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_reason: Mapped[str | None] = mapped_column(Text, default=None)


class ApiKeyRepo(Base):
    __tablename__ = "gateway_key_repos"

    key_pk: Mapped[int] = mapped_column(ForeignKey("gateway_keys.id", ondelete="CASCADE"), primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)


class UsageDaily(Base):
    __tablename__ = "gateway_usage"
    __table_args__ = (UniqueConstraint("key_pk", "repo_id", "day", name="uq_gateway_usage_key_repo_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_pk: Mapped[int] = mapped_column(ForeignKey("gateway_keys.id", ondelete="CASCADE"), index=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)
    day: Mapped[date] = mapped_column(Date)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)      # limits, depth, policy hook, kill switch
    errors: Mapped[int] = mapped_column(Integer, default=0)       # engine failures
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
