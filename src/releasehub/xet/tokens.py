"""CAS tokens: what the Xet client sends, as `Authorization: Bearer`, to the CAS routes.

A token is `xet1.<repo id>.<user id>.<direction>.<expiry>.<hmac>`: an HMAC-SHA256 with the
server's signing key over the rest, so that any replica can check it without the database. It is
short-lived and bound to one repo, one user and one direction (`read` or `write`): xorbs and
shards sent with it become that user's claims in that repo and nowhere else.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from releasehub.errors import Forbidden, Unauthorized

PREFIX = "xet1"
READ, WRITE = "read", "write"


@dataclass(frozen=True)
class CasGrant:
    repo_id: int
    user_id: int
    direction: str
    expires: int

    def message(self) -> bytes:
        return f"xet-cas:{self.repo_id}:{self.user_id}:{self.direction}:{self.expires}".encode()


def _signature(key: bytes, grant: CasGrant) -> str:
    return hmac.new(key, grant.message(), hashlib.sha256).hexdigest()


def issue(key: bytes, repo_id: int, user_id: int, direction: str, ttl_seconds: int,
          now: float | None = None) -> tuple[str, CasGrant]:
    expires = int(now if now is not None else time.time()) + ttl_seconds
    grant = CasGrant(repo_id, user_id, direction, expires)
    return f"{PREFIX}.{repo_id}.{user_id}.{direction}.{expires}.{_signature(key, grant)}", grant


def _refused(why: str) -> Unauthorized:
    return Unauthorized(f"CAS token {why}; ask the Hub API for a new one "
                        "(GET /api/models/{repo}/xet-write-token/{revision}).")


def verify(key: bytes, authorization: str | None, direction: str | None, now: float | None = None) -> CasGrant:
    """The grant of a valid bearer CAS token; `direction` None accepts either direction."""
    if not authorization:
        raise _refused("missing (send `Authorization: Bearer <accessToken>`)")
    scheme, _, token = authorization.partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 6 or parts[0] != PREFIX:
        raise _refused("malformed")
    _, repo, user, way, expires, signature = parts
    if not (repo.isdigit() and user.isdigit() and expires.isdigit()) or way not in (READ, WRITE):
        raise _refused("malformed")
    grant = CasGrant(int(repo), int(user), way, int(expires))
    if not hmac.compare_digest(_signature(key, grant), signature):
        raise _refused("signature is invalid")
    if (now if now is not None else time.time()) > grant.expires:
        raise _refused("has expired")
    if direction is not None and grant.direction != direction:
        raise Forbidden(f"This CAS token is for {grant.direction}ing; this route needs a {direction} token "
                        "(xet-write-token).")
    return grant


# ---------------------------------------------------------------- signed xorb range links


@dataclass(frozen=True)
class RangeLink:
    """A reconstruction's xorb range URL: exactly one xorb, one inclusive byte range, an expiry.
    The client fetches it without its bearer token, so the link is the credential."""

    xorb: str
    start: int
    end: int  # inclusive, as in an HTTP Range header
    expires: int

    def message(self) -> bytes:
        return f"xet-xorb-range:{self.xorb}:{self.start}:{self.end}:{self.expires}".encode()

    def sign(self, key: bytes) -> str:
        return hmac.new(key, self.message(), hashlib.sha256).hexdigest()

    def query(self, key: bytes) -> str:
        return f"bytes={self.start}-{self.end}&exp={self.expires}&sig={self.sign(key)}"


def verify_link(key: bytes, xorb: str, bytes_: str | None, expires: str | None, signature: str | None,
                now: float | None = None) -> RangeLink:
    """The link a xorb range URL carries, or Forbidden (malformed, forged, another range, expired)."""
    start, _, end = (bytes_ or "").partition("-")
    if not (start.isdigit() and end.isdigit() and (expires or "").isdigit() and signature):
        raise Forbidden("This xorb range link is malformed; ask for the file's reconstruction again.")
    link = RangeLink(xorb, int(start), int(end), int(expires or 0))
    if link.start > link.end or not hmac.compare_digest(link.sign(key), signature):
        raise Forbidden("This xorb range link's signature is invalid; ask for the file's reconstruction again.")
    if (now if now is not None else time.time()) > link.expires:
        raise Forbidden("This xorb range link has expired; ask for the file's reconstruction again.")
    return link
