"""Signed, expiring upload links.

The LFS client PUTs file bytes to the links the batch API hands out without sending its token,
so the link itself is the credential: an HMAC over what it may upload, with an expiry. The link
is bound to one repo and one user, so that the bytes it carries become that user's claim on
that oid in that repo (and nowhere else).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from releasehub.errors import Forbidden


@dataclass(frozen=True)
class UploadGrant:
    oid: str
    size: int
    chunk: int  # 0 for a single-part upload
    expires: int
    repo_id: int  # the repo the batch call named
    user_id: int  # the user whose token made the batch call

    def message(self) -> bytes:
        return (f"lfs-upload:{self.oid}:{self.size}:{self.chunk}:{self.expires}:{self.repo_id}:"
                f"{self.user_id}").encode()


def sign(key: bytes, grant: UploadGrant) -> str:
    return hmac.new(key, grant.message(), hashlib.sha256).hexdigest()


def verify(key: bytes, grant: UploadGrant, signature: str, now: float | None = None) -> None:
    if not hmac.compare_digest(sign(key, grant), signature):
        raise Forbidden("Upload link signature is invalid; ask the LFS batch API for a new link.")
    if (now if now is not None else time.time()) > grant.expires:
        raise Forbidden("Upload link has expired; ask the LFS batch API for a new link.")


def new_grant(oid: str, size: int, chunk: int, ttl_seconds: int, repo_id: int, user_id: int) -> UploadGrant:
    return UploadGrant(oid, size, chunk, int(time.time()) + ttl_seconds, repo_id, user_id)
