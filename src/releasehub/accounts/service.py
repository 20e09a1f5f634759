"""Account logic: users, organisations, memberships, tokens, and authentication."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, Callable, Sequence

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from releasehub.accounts.models import Membership, Org, Token, User
from releasehub.accounts.subject import ANONYMOUS, Subject  # noqa: F401 - ANONYMOUS is re-exported
from releasehub.db import utcnow
from releasehub.errors import BadRequest, NameTaken, NotFound, TokenNotFound, UserNotFound
from releasehub.names import validate_name

TOKEN_PREFIX = "rh_"
SCOPES = ("read", "write")
ROLES = ("read", "write", "admin")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _name_taken(session: Session, name: str) -> bool:
    lowered = name.lower()
    for model in (User, Org):
        if session.scalar(select(model.id).where(model.name.ilike(lowered))) is not None:
            return True
    return False


def create_user(
    session: Session, name: str, *, email: str | None = None, fullname: str | None = None, admin: bool = False,
    email_verified: bool = False,
) -> User:
    validate_name(name, "user name")
    if _name_taken(session, name):
        raise NameTaken(f"The name {name!r} is already used by a user or organisation; choose another.")
    # Verified only with an email to verify: the operator vouches for an address, not for none.
    user = User(name=name, email=email, fullname=fullname, is_admin=admin, email_verified=bool(email and email_verified))
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UserNotFound(f"No user named {name!r}. Create one with `releasehub users create {name}`.")
    return user


def set_email(session: Session, name: str, email: str, *, verified: bool = False) -> User:
    """Set a user's email; `verified` when the operator vouches for it (releasehub sends no mail)."""
    user = get_user(session, name)
    user.email = email
    user.email_verified = verified
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def create_org(session: Session, name: str, *, owner: str, fullname: str | None = None) -> Org:
    validate_name(name, "organisation name")
    owner_user = get_user(session, owner)
    if _name_taken(session, name):
        raise NameTaken(f"The name {name!r} is already used by a user or organisation; choose another.")
    org = Org(name=name, fullname=fullname)
    session.add(org)
    session.flush()
    session.add(Membership(org_id=org.id, user_id=owner_user.id, role="admin"))
    session.flush()
    return org


def get_org(session: Session, name: str) -> Org:
    org = session.scalar(select(Org).where(Org.name == name))
    if org is None:
        raise NotFound(f"No organisation named {name!r}. Create one with `releasehub orgs create {name} --owner USER`.")
    return org


def list_orgs(session: Session) -> list[Org]:
    return list(session.scalars(select(Org).order_by(Org.name)))


def add_member(session: Session, org_name: str, user_name: str, role: str = "write") -> Membership:
    if role not in ROLES:
        raise BadRequest(f"Unknown role {role!r}; use one of {', '.join(ROLES)}.")
    org = get_org(session, org_name)
    user = get_user(session, user_name)
    membership = session.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    )
    if membership is None:
        membership = Membership(org_id=org.id, user_id=user.id, role=role)
        session.add(membership)
    else:
        membership.role = role
    session.flush()
    return membership


def remove_member(session: Session, org_name: str, user_name: str) -> None:
    org = get_org(session, org_name)
    user = get_user(session, user_name)
    membership = session.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    )
    if membership is None:
        raise NotFound(f"{user_name!r} is not a member of {org_name!r}.")
    session.delete(membership)


def canonical_namespace(session: Session, name: str) -> str | None:
    """The user or organisation name as it was created, whatever the letter case asked (names are unique
    ignoring case, as on the Hub); None when there is none."""
    lowered = name.lower()
    for model in (User, Org):
        found = session.scalar(select(model.name).where(func.lower(model.name) == lowered))
        if found is not None:
            return str(found)
    return None


def namespace_exists(session: Session, name: str) -> bool:
    return (
        session.scalar(select(User.id).where(User.name == name)) is not None
        or session.scalar(select(Org.id).where(Org.name == name)) is not None
    )


def create_token(
    session: Session,
    user_name: str,
    *,
    name: str = "default",
    scope: str = "read",
    expires_in_days: int | None = None,
    now: datetime | None = None,
) -> tuple[Token, str]:
    """Create a token; returns the row and the secret, which is never retrievable again."""
    if scope not in SCOPES:
        raise BadRequest(f"Unknown token scope {scope!r}; use one of {', '.join(SCOPES)}.")
    if expires_in_days is not None and expires_in_days <= 0:
        raise BadRequest("--expires-in must be a positive number of days.")
    user = get_user(session, user_name)
    now = now or utcnow()
    secret = TOKEN_PREFIX + secrets.token_urlsafe(30)
    token = Token(
        user_id=user.id,
        name=name,
        secret_hash=hash_secret(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        scope=scope,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(token)
    session.flush()
    return token, secret


def list_tokens(session: Session, user_name: str | None = None) -> list[Token]:
    query = select(Token).join(User).order_by(User.name, Token.id)
    if user_name is not None:
        query = query.where(User.name == user_name)
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: int, now: datetime | None = None, *, owner: str | None = None) -> Token:
    """Revoke a token. With `owner`, a token of anybody else answers exactly as a missing one."""
    token = session.get(Token, token_id)
    if token is None or (owner is not None and token.user.name != owner):
        raise TokenNotFound(f"No token with id {token_id}. List them with `releasehub tokens list`.")
    if token.revoked_at is None:
        token.revoked_at = now or utcnow()
    return token


# Built once: authentication runs on every request, and building a statement costs more than
# running it on SQLite. One row per organisation of the user (one row with NULLs if none).
_TOKEN_LOOKUP = (
    select(
        Token.id, Token.scope, Token.expires_at, Token.revoked_at, User.id, User.name, User.is_admin,
        Org.name, Membership.role,
    )
    .join(User, User.id == Token.user_id)
    .outerjoin(Membership, Membership.user_id == User.id)
    .outerjoin(Org, Org.id == Membership.org_id)
    .where(Token.secret_hash == bindparam("secret_hash"))
)


def token_rows(executor: Session | Connection, secret_hash: str) -> Sequence[Any]:
    """The rows `authenticate` judges, for a token's hashed secret (what a cache may keep)."""
    return executor.execute(_TOKEN_LOOKUP, {"secret_hash": secret_hash}).all()


def authenticate(executor: Session | Connection | None, secret: str, now: datetime | None = None,
                 rows_for: Callable[[str], Sequence[Any]] | None = None) -> Subject | None:
    """The subject a token secret stands for, or None when it is unknown, expired or revoked.

    Takes a Session or a bare Connection (the download path uses the latter to skip the ORM), or
    `rows_for`, which answers `token_rows` for a hashed secret (from a cache): expiry and
    revocation are judged here, now, either way.
    """
    if not secret.startswith(TOKEN_PREFIX):
        return None
    now = now or utcnow()
    if rows_for is not None:
        rows = rows_for(hash_secret(secret))
    else:
        assert executor is not None
        rows = token_rows(executor, hash_secret(secret))
    if not rows:
        return None
    token_id, scope, expires_at, revoked_at, user_id, user_name, is_admin, _, _ = rows[0]
    if revoked_at is not None or (expires_at is not None and expires_at <= now):
        return None
    roles = {row[7]: row[8] for row in rows if row[7] is not None}
    return Subject(
        user_id=user_id, name=user_name, is_admin=is_admin, scope=scope, org_roles=roles, token_id=token_id
    )
