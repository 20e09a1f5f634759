"""Xet tables: verified xorbs with the server's own chunk index, who sent which xorb to which repo,
and the files reconstructed from shards. `XetFileXorb` holds a foreign key on its xorb, so that a
xorb a file uses cannot be deleted (see releasehub.collector)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from releasehub.db import Base, UTCDateTime, utcnow


class XetXorb(Base):
    """A xorb the server verified and stores under `<data_dir>/xet/xorbs/`, named by its hash
    (the protocol's string form). `chunk_index` is the server's own reading of it, packed
    (see `xorb.XorbIndex.pack`): chunk hashes, unpacked sizes and offsets; never the client's word."""

    __tablename__ = "xet_xorbs"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    num_chunks: Mapped[int] = mapped_column(Integer)
    unpacked_bytes: Mapped[int] = mapped_column(BigInteger)
    packed_bytes: Mapped[int] = mapped_column(BigInteger)
    chunk_index: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When a client last had reason to rely on it (its upload, a shard using it, a dedup answer
    # naming it): the client caches shards for three weeks and then names the xorb without
    # sending it, so the collector keeps an unused xorb until this is older than the retention.
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class XetXorbClaim(Base):
    """`user_id` sent this xorb's verified bytes with a CAS token bound to `repo_id`: a shard of
    theirs for this repo may name it."""

    __tablename__ = "xet_xorb_claims"

    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    xorb_hash: Mapped[str] = mapped_column(ForeignKey("xet_xorbs.hash"), primary_key=True)
    # Verified xorb bodies received from this user for this repo: a byte counter of the xorb route.
    received_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class XetXorbSender(Base):
    """`user_id` sent this xorb's verified bytes, to some repo. It outlives that repo: the client
    deduplicates against the xorbs it uploaded (its shard cache keeps them for weeks) and sends a
    shard without their bytes, also to another repo or after the first one was deleted. Having sent
    the bytes proves holding them, so naming the xorb again reveals nothing."""

    __tablename__ = "xet_xorb_senders"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    xorb_hash: Mapped[str] = mapped_column(ForeignKey("xet_xorbs.hash"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class XetFile(Base):
    """A file a shard described, verified and reconstructed into the blob store as `sha256`.
    `terms` packs its reconstruction (xorb hash, chunk start, chunk end per term)."""

    __tablename__ = "xet_files"

    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    file_hash: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(Integer)
    terms: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class XetFileXorb(Base):
    """Which xorbs a reconstructed file's terms use: finds the files a xorb serves (the claim rule's
    "may already read" half)."""

    __tablename__ = "xet_file_xorbs"

    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    file_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    xorb_hash: Mapped[str] = mapped_column(ForeignKey("xet_xorbs.hash"), primary_key=True, index=True)
