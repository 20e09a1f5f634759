"""CAS tokens: what the Xet client sends, as `Authorization: Bearer`, to the CAS routes; and the
signed xorb range links of a reconstruction, which the client fetches without that token.

A token is `xet1.<repo id>.<user id>.<direction>.<expiry>[.<commit>].<hmac>`: an HMAC-SHA256 with
the server's signing key over the rest, so that any replica can check it without the database. It
is short-lived and bound to one repo, one user and one direction (`read` or `write`): xorbs and
shards sent with it become that user's claims in that repo and nowhere else. A read token may also
name the commit its revision resolved to when it was issued: not a permission (every
reconstruction is decided again), only what the audit log records as the download's revision.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from releasehub.errors import Forbidden, Unauthorized

PREFIX = "xet1"
READ, WRITE = "read", "write"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class CasGrant:
    repo_id: int
    user_id: int
    direction: str
    expires: int
    commit: str = ""  # the commit oid a read token's revision resolved to, when known

    def message(self) -> bytes:
        base = f"xet-cas:{self.repo_id}:{self.user_id}:{self.direction}:{self.expires}"
        return (f"{base}:{self.commit}" if self.commit else base).encode()


def _signature(key: bytes, grant: CasGrant) -> str:
    return hmac.new(key, grant.message(), hashlib.sha256).hexdigest()


def issue(key: bytes, repo_id: int, user_id: int, direction: str, ttl_seconds: int,
          now: float | None = None, commit: str = "") -> tuple[str, CasGrant]:
    if commit and not _COMMIT.match(commit):
        raise ValueError(f"a CAS token names a commit by its 40-hex oid, not {commit!r}")
    expires = int(now if now is not None else time.time()) + ttl_seconds
    grant = CasGrant(repo_id, user_id, direction, expires, commit)
    fields = [PREFIX, str(repo_id), str(user_id), direction, str(expires)] + ([commit] if commit else [])
    return ".".join([*fields, _signature(key, grant)]), grant


def _refused(why: str) -> Unauthorized:
    return Unauthorized(f"CAS token {why}; ask the Hub API for a new one "
                        "(GET /api/models/{repo}/xet-write-token/{revision}).")


def verify(key: bytes, authorization: str | None, direction: str | None, now: float | None = None) -> CasGrant:
    """The grant of a valid bearer CAS token; `direction` None accepts either direction."""
    if not authorization:
        raise _refused("missing (send `Authorization: Bearer <accessToken>`)")
    scheme, _, token = authorization.partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) not in (6, 7) or parts[0] != PREFIX:
        raise _refused("malformed")
    repo, user, way, expires = parts[1:5]
    commit = parts[5] if len(parts) == 7 else ""
    signature = parts[-1]
    if not (repo.isdigit() and user.isdigit() and expires.isdigit()) or way not in (READ, WRITE) or \
            (len(parts) == 7 and not _COMMIT.match(commit)):
        raise _refused("malformed")
    grant = CasGrant(int(repo), int(user), way, int(expires), commit)
    if not hmac.compare_digest(_signature(key, grant), signature):
        raise _refused("signature is invalid")
    if (now if now is not None else time.time()) > grant.expires:
        raise _refused("has expired")
    if direction is not None and grant.direction != direction:
        raise Forbidden(f"This CAS token is for {grant.direction}ing; this route needs a {direction} token "
                        "(xet-write-token).")
    return grant


# ---------------------------------------------------------------- signed xorb range links


Span = tuple[int, int]  # an inclusive byte range, as in an HTTP Range header


@dataclass(frozen=True)
class RangeLink:
    """A reconstruction's xorb range URL: exactly one xorb, a set of disjoint inclusive byte ranges
    in ascending order (one for v1 answers, one per merged run of the file's chunks for v2), and an
    expiry. The client fetches it without its bearer token, so the link is the credential: it
    serves those bytes and no others of the xorb, which may hold chunks of files the reader may not
    download."""

    xorb: str
    spans: tuple[Span, ...]
    expires: int

    def message(self) -> bytes:
        # One span signs as links did before several spans existed: `start:end`.
        spans = ",".join(f"{start}:{end}" for start, end in self.spans)
        return f"xet-xorb-range:{self.xorb}:{spans}:{self.expires}".encode()

    def sign(self, key: bytes) -> str:
        return hmac.new(key, self.message(), hashlib.sha256).hexdigest()

    def query(self, key: bytes) -> str:
        spans = ",".join(f"{start}-{end}" for start, end in self.spans)
        return f"bytes={spans}&exp={self.expires}&sig={self.sign(key)}"

    def covers(self, start: int, end: int) -> bool:
        """Does one signed span hold all of [start, end]?"""
        return any(a <= start <= end <= b for a, b in self.spans)


def parse_spans(text: str) -> tuple[Span, ...] | None:
    """`0-99,200-299` as ascending, disjoint spans; None when malformed."""
    spans: list[Span] = []
    for piece in text.split(","):
        start, sep, end = piece.partition("-")
        if not (sep and start.isdigit() and end.isdigit()) or int(start) > int(end):
            return None
        if spans and int(start) <= spans[-1][1]:
            return None
        spans.append((int(start), int(end)))
    return tuple(spans) or None


def _bad_link(why: str) -> Forbidden:
    return Forbidden(f"This xorb range link {why}; ask for the file's reconstruction again.")


def verify_link(key: bytes, xorb: str, bytes_: str | None, expires: str | None, signature: str | None,
                now: float | None = None) -> RangeLink:
    """The link a xorb range URL carries, or Forbidden (malformed, forged, other ranges, expired).
    Nothing here depends on whether the xorb exists: a forged link for a stored xorb and one for
    an unknown hash get the same answer."""
    spans = parse_spans(bytes_ or "")
    if spans is None or not (expires or "").isdigit() or not signature:
        raise _bad_link("is malformed")
    link = RangeLink(xorb, spans, int(expires or 0))
    if not hmac.compare_digest(link.sign(key), signature):
        raise _bad_link("has an invalid signature")
    if (now if now is not None else time.time()) > link.expires:
        raise _bad_link("has expired")
    return link
