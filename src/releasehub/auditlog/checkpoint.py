"""Signed checkpoints of the audit chain's head: an anchor kept outside the database.

The hash chain shows that no event was edited, inserted or reordered, but someone who can write
the database can also delete the newest events and reset `audit_head`, or delete events and
recompute every hash after them: the shortened or re-chained log verifies again. A checkpoint
names the head at one moment (its seq and hash), signed with an Ed25519 key the database does
not hold; kept elsewhere (a file, a webhook receiver), it makes `audit verify --checkpoint`
fail when the log no longer holds that head.

A checkpoint is a JSON object::

    {"format": "releasehub-audit-checkpoint/1", "seq": 1234, "hash": "<64 hex>",
     "at": "2026-11-23T10:00:00.000000+00:00", "key_id": "ed25519:<16 hex>",
     "signature": "<base64 of the 64-byte Ed25519 signature>"}

The signature covers the UTF-8 bytes of
``json.dumps({format, seq, hash, at, key_id}, sort_keys=True, separators=(",", ":"))``;
`key_id` is "ed25519:" and the first 16 hex digits of the sha256 of the raw 32-byte public key.
A checkpoint of an empty log has seq 0 and the hash of 64 zeros.

The private key is a PKCS#8 PEM file created with mode 0600 on first use; its public key (PEM,
SubjectPublicKeyInfo) is written next to it with the suffix `.pub`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import stat
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from releasehub.auditlog.log import GENESIS, _iso, _lock_head
from releasehub.auditlog.models import AuditEvent, AuditHead

log = logging.getLogger("releasehub.audit")

FORMAT = "releasehub-audit-checkpoint/1"
KEY_FILE_NAME = "audit-signing.key"
_SIGNED = ("format", "seq", "hash", "at", "key_id")


class CheckpointError(Exception):
    """A key, a checkpoint file or the log does not allow the operation; the message says why."""


def public_key_path(key_file: Path) -> Path:
    """Where the public key of `key_file` is kept: next to it, with the suffix `.pub`."""
    return key_file.with_suffix(".pub")


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


class SigningKey:
    """The Ed25519 private key that signs checkpoints, read from (or created in) its file."""

    def __init__(self, private_key: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._key = private_key
        self.path = path
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """The key in `path`; a new one (mode 0600, its public key next to it) when there is none."""
        path = Path(path)
        if not path.exists():
            _create_key_file(path)
        key = cls._load(path)
        _write_public_key(public_key_path(path), key.public_key)
        return key

    @classmethod
    def _load(cls, path: Path) -> SigningKey:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"cannot read the audit signing key {path}: {exc.strerror or exc}") \
                from None
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path} is not an unencrypted PEM private key ({exc})") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise CheckpointError(f"{path} holds a {type(private).__name__}, not an Ed25519 private key")
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("the audit signing key %s is readable by other users (mode %o); chmod 600 it",
                        path, stat.S_IMODE(mode))
        return cls(private, path)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def _create_key_file(path: Path) -> None:
    """Write a new key to `path` unless another process does first (then its key is used)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        # A hard link appears whole or not at all, and fails when the name exists: two server
        # processes starting together end up with one key.
        os.link(tmp, path)
        log.info("created the audit signing key %s (key id %s)", path, key_id(private.public_key()))
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _write_public_key(path: Path, public_key: Ed25519PublicKey) -> None:
    pem = public_pem(public_key)
    try:
        if path.exists() and path.read_text(encoding="ascii", errors="replace") == pem:
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(pem, encoding="ascii")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:  # the private key is what matters; the public key can be printed again
        log.warning("cannot write the audit public key %s: %s", path, exc)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file holding the public key or the private key."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read the public key {path}: {exc.strerror or exc}") from None
    try:
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            public: object = private.public_key()
        else:
            public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a PEM public or private key ({exc})") from None
    if not isinstance(public, Ed25519PublicKey):
        raise CheckpointError(f"{path} holds a {type(public).__name__}, not an Ed25519 key")
    return public


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str
    key_id: str
    signature: str
    format: str = FORMAT

    def signed_bytes(self) -> bytes:
        return _signed_bytes(self.format, self.seq, self.hash, self.at, self.key_id)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: out[k] for k in (*_SIGNED, "signature")}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> Checkpoint:
        if not isinstance(data, dict):
            raise CheckpointError("a checkpoint is a JSON object")
        missing = [k for k in (*_SIGNED, "signature") if k not in data]
        if missing:
            raise CheckpointError(f"the checkpoint lacks {', '.join(missing)}")
        if data["format"] != FORMAT:
            raise CheckpointError(f"unknown checkpoint format {data['format']!r}; "
                                  f"this server reads {FORMAT!r}")
        seq, digest = data["seq"], data["hash"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise CheckpointError(f"the checkpoint's seq {seq!r} is not a whole number >= 0")
        if not isinstance(digest, str) or len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise CheckpointError(f"the checkpoint's hash {digest!r} is not 64 lowercase hex digits")
        for name in ("at", "key_id", "signature"):
            if not isinstance(data[name], str):
                raise CheckpointError(f"the checkpoint's {name} is not a string")
        return cls(seq=seq, hash=digest, at=data["at"], key_id=data["key_id"], signature=data["signature"])

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CheckpointError(f"the checkpoint is not JSON ({exc})") from None
        return cls.from_dict(data)

    @classmethod
    def read(cls, path: Path) -> Checkpoint:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CheckpointError(f"cannot read the checkpoint {path}: {exc.strerror or exc}") from None
        try:
            return cls.from_json(text)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None


def _signed_bytes(fmt: str, seq: int, digest: str, at: str, kid: str) -> bytes:
    body = {"format": fmt, "seq": seq, "hash": digest, "at": at, "key_id": kid}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign(key: SigningKey, seq: int, digest: str, at: datetime | None = None) -> Checkpoint:
    when = _iso(at or datetime.now(UTC))
    signature = key.sign(_signed_bytes(FORMAT, seq, digest, when, key.key_id))
    return Checkpoint(seq=seq, hash=digest, at=when, key_id=key.key_id,
                      signature=base64.b64encode(signature).decode("ascii"))


def check_signature(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> None:
    """Raise CheckpointError unless `public_key` signed exactly this checkpoint."""
    expected = key_id(public_key)
    if checkpoint.key_id != expected:
        raise CheckpointError(f"the checkpoint was signed by key {checkpoint.key_id}, but the public key "
                              f"given is {expected}: pass the public key of the server that wrote it "
                              "(--public-key)")
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        public_key.verify(signature, checkpoint.signed_bytes())
    except (InvalidSignature, binascii.Error, ValueError):
        raise CheckpointError("bad signature: the checkpoint's seq, hash, time or key id were changed after "
                              "it was signed, or it was not signed by this key") from None


def head(session: Session, *, lock: bool = False) -> tuple[int, str]:
    """The chain's head (seq, hash), checked against the event it names.

    With `lock`, the head is locked as by an appender (until the caller's transaction ends), so
    that nothing is appended meanwhile and concurrent checkpointers take turns.
    """
    if lock:
        row = _lock_head(session)
        seq, digest = row.seq, row.hash
    else:
        current = session.get(AuditHead, 1)
        seq, digest = (current.seq, current.hash) if current is not None else (0, GENESIS)
    if seq == 0:
        if digest != GENESIS:
            raise CheckpointError("the audit head says seq 0 but its hash is not the genesis hash; "
                                  "run `releasehub audit verify`")
        return seq, digest
    stored = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq))
    if stored != digest:
        raise CheckpointError(f"the audit head (seq {seq}) does not match the event it names; "
                              "run `releasehub audit verify`")
    return seq, digest


def create(session: Session, key: SigningKey, *, lock: bool = False,
           at: datetime | None = None) -> Checkpoint:
    """A checkpoint of the current head, signed by `key`."""
    seq, digest = head(session, lock=lock)
    return sign(key, seq, digest, at)


def check_against_log(session: Session, checkpoint: Checkpoint) -> str | None:
    """Why the log no longer holds the checkpoint's head, or None when it does.

    The event at the checkpoint's seq must exist and have its hash; with an intact chain (see
    `verify`) every event up to it is then the one the checkpoint saw.
    """
    if checkpoint.seq == 0:
        if checkpoint.hash != GENESIS:
            return "hash differs at seq 0: the checkpoint names seq 0 with a hash other than genesis"
        return None
    current = session.get(AuditHead, 1)
    head_seq = current.seq if current is not None else 0
    stored = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == checkpoint.seq))
    if stored is None:
        if head_seq < checkpoint.seq:
            return (f"seq {checkpoint.seq} is missing: the checkpoint of {checkpoint.at} names event "
                    f"{checkpoint.seq}, but the log ends at seq {head_seq} (events after it were deleted and "
                    "the head reset)")
        return (f"seq {checkpoint.seq} is missing: the checkpoint of {checkpoint.at} names it, "
                "the log lacks it")
    if stored != checkpoint.hash:
        return (f"hash differs at seq {checkpoint.seq}: the checkpoint of {checkpoint.at} says "
                f"{checkpoint.hash[:16]}, the log says {stored[:16]} (events up to it were changed, deleted "
                "or re-chained)")
    return None
