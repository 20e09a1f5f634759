"""Repository tables.

A commit stores the full list of its files (a snapshot), so that reading any revision is one
indexed query and a commit never depends on the rows of another. File contents live in the
blob store under their sha256; `blobs` records which ones are stored and verified.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from releasehub.db import Base, UTCDateTime, utcnow


class Repo(Base):
    __tablename__ = "repos"
    __table_args__ = (UniqueConstraint("repo_type", "namespace", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_type: Mapped[str] = mapped_column(String(16), default="model")
    namespace: Mapped[str] = mapped_column(String(96))
    name: Mapped[str] = mapped_column(String(96))
    # private is kept equal to `visibility != "public"`: the Hub's `private` flag, and cheap to filter on.
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    visibility: Mapped[str] = mapped_column(String(16), default="public", server_default="public")
    gated: Mapped[str | None] = mapped_column(String(8), default=None)  # None | "auto" | "manual"
    # The release policy document (access/policy.py), without visibility and gated; bumped
    # `policy_version` lets every replica cache the compiled rules safely.
    policy: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    policy_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The card's policy as last applied: {"applied": the card's keys as written, "times": instants
    # fixed for relative stage times (`at: +30d`) by stage, audience and text}. A commit applies
    # only the keys that differ from "applied", so a stored policy changes only when its source does
    # and a schedule does not slide when the card is edited again.
    card_source: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"

    def set_visibility(self, visibility: str) -> None:
        self.visibility = visibility
        self.private = visibility != "public"


class Blob(Base):
    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When its bytes were last stored or a commit in progress last named it: the collector leaves
    # an unreferenced blob alone until this is older than its grace period (None: created_at).
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class UploadClaim(Base):
    """Bytes that hashed to `sha256`, sent by `user_id` in an upload bound to `repo_id`.

    Blobs are stored once for the whole server, but a commit may name an oid only when its
    author sent those bytes to this repo (a claim) or may already download a file with that oid
    here: a blob existing elsewhere on the server never grants anything.
    """

    __tablename__ = "upload_claims"

    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Commit(Base):
    __tablename__ = "commits"
    __table_args__ = (UniqueConstraint("repo_id", "oid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    oid: Mapped[str] = mapped_column(String(40), index=True)
    parent_oid: Mapped[str | None] = mapped_column(String(40), default=None)
    title: Mapped[str] = mapped_column(String(1000))
    message: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Front matter of README.md at this commit (None when absent), and its parse error.
    card_data: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    card_error: Mapped[str | None] = mapped_column(Text, default=None)


class CommitFile(Base):
    __tablename__ = "commit_files"
    __table__: ClassVar[Table]

    commit_id: Mapped[int] = mapped_column(
        ForeignKey("commits.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    # git blob sha1 of the file (of its LFS pointer for LFS files): the Hub's `oid`/`blobId`.
    git_oid: Mapped[str] = mapped_column(String(40))
    lfs: Mapped[bool] = mapped_column(Boolean, default=False)


class Ref(Base):
    __tablename__ = "refs"
    __table_args__ = (UniqueConstraint("repo_id", "kind", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # "branch" | "tag"
    name: Mapped[str] = mapped_column(String(255))
    commit_id: Mapped[int] = mapped_column(ForeignKey("commits.id"))
    message: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ServerSecret(Base):
    """Secrets shared by every replica (the key that signs upload links)."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
