"""Signing in to the web pages: passwords (argon2id) and browser sessions.

A browser signs in with a user's password or with one of their access tokens; either way it
gets a session whose secret lives only in an HttpOnly cookie (the table keeps its sha256), and
the session stands for the same `Subject` a token would. Signing out ends the session on the
server, so a copied cookie stops working too.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from releasehub.accounts.models import Membership, Org, Token, User, WebSession
from releasehub.accounts.service import authenticate, get_user, hash_secret
from releasehub.accounts.subject import Subject
from releasehub.db import utcnow
from releasehub.errors import BadRequest

SESSION_DAYS = 14
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 hashes any length; a bound keeps a request from costing much

_hasher = PasswordHasher()
# Verified when the user has no password or does not exist, so that the time a failed sign-in
# takes does not tell which user names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def set_password(session: Session, user_name: str, password: str) -> User:
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"A password needs at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise BadRequest(f"A password may have at most {MAX_PASSWORD} characters.")
    user = get_user(session, user_name)
    user.password_hash = _hasher.hash(password)
    # A new password ends the sessions signed in with the old one.
    for row in session.scalars(select(WebSession).where(WebSession.user_id == user.id,
                                                        WebSession.ended_at.is_(None))):
        row.ended_at = utcnow()
    session.flush()
    return user


def check_password(session: Session, user_name: str, password: str) -> User | None:
    """The user when `password` is theirs, else None (unknown user, no password, wrong password)."""
    user = session.scalar(select(User).where(User.name == user_name)) if user_name else None
    stored = user.password_hash if user is not None else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return None
    if user is None or stored is None:
        return None
    if _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)
    return user


@dataclass(frozen=True)
class SignIn:
    """Who signs in, with which scope, and through which token (None: a password)."""

    user: User
    scope: str
    token: Token | None = None


def sign_in_with_token(session: Session, token: str) -> SignIn | None:
    """A valid access token signs its user in, with the token's scope."""
    subject = authenticate(session, token.strip())
    if subject is None or subject.user_id is None or subject.token_id is None:
        return None
    user, row = session.get(User, subject.user_id), session.get(Token, subject.token_id)
    return SignIn(user, subject.scope, row) if user is not None and row is not None else None


def start(session: Session, signed: SignIn, now: datetime | None = None) -> str:
    """A new session; returns the cookie's secret (never stored). A session signed in with a token
    ends when the token does (revoked or expired)."""
    now = now or utcnow()
    secret = secrets.token_urlsafe(32)
    expires = now + timedelta(days=SESSION_DAYS)
    if signed.token is not None and signed.token.expires_at is not None:
        expires = min(expires, signed.token.expires_at)
    session.add(WebSession(user_id=signed.user.id, secret_hash=hash_secret(secret), scope=signed.scope,
                           token_id=signed.token.id if signed.token is not None else None, created_at=now,
                           expires_at=expires))
    session.flush()
    return secret


def end(session: Session, secret: str, now: datetime | None = None) -> None:
    row = session.scalar(select(WebSession).where(WebSession.secret_hash == hash_secret(secret)))
    if row is not None and row.ended_at is None:
        row.ended_at = now or utcnow()


_SESSION_LOOKUP = (
    select(WebSession.id, WebSession.scope, WebSession.expires_at, WebSession.ended_at, User.id, User.name,
           User.is_admin, Org.name, Membership.role, WebSession.token_id, Token.revoked_at)
    .join(User, User.id == WebSession.user_id)
    .outerjoin(Token, Token.id == WebSession.token_id)
    .outerjoin(Membership, Membership.user_id == User.id)
    .outerjoin(Org, Org.id == Membership.org_id)
    .where(WebSession.secret_hash == bindparam("secret_hash"))
)


def subject_of(executor: Session | Connection, secret: str, now: datetime | None = None) -> Subject | None:
    """The subject a session cookie stands for, or None when it is unknown, expired or ended."""
    if not secret or len(secret) > 100:
        return None
    now = now or utcnow()
    rows = executor.execute(_SESSION_LOOKUP, {"secret_hash": hash_secret(secret)}).all()
    if not rows:
        return None
    _, scope, expires_at, ended_at, user_id, user_name, is_admin, _, _, token_id, token_revoked = rows[0]
    if ended_at is not None or expires_at <= now or (token_id is not None and token_revoked is not None):
        return None
    roles = {row[7]: row[8] for row in rows if row[7] is not None}
    return Subject(user_id=user_id, name=user_name, is_admin=is_admin, scope=scope, org_roles=roles)
