"""Users, organisations and tokens over HTTP: what `releasehub users|orgs|tokens` call.

Who may do what:
- users (create, list, email, password): server admins, with a write token (`Permission.SERVER_ADMIN`);
- organisations: any signed-in user with a write token creates one they own (naming another owner
  needs a server admin); an organisation's admins, and server admins, add and remove members
  (`Permission.ORG_ADMIN`, then `decide_org_admin`: an organisation the caller has no role in
  answers as a missing one); anyone signed in lists their own, a server admin lists all;
- tokens: a user creates, lists and revokes their own, never with a scope above the calling
  token's (a read token cannot mint a write one); another user's need a server admin. Someone
  else's token id answers exactly as a missing one.

A token's secret is in the answer that creates it and never again. Every change is an audit
event (`user.created`, `org.member_added`, `token.revoked`, ...) naming who did it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from releasehub import auditlog as audit
from releasehub.access import Permission
from releasehub.access.decide import decide_org_admin, decide_subject
from releasehub.accounts import service as accounts
from releasehub.accounts import sessions
from releasehub.accounts.models import Org, Token, User
from releasehub.accounts.service import Subject
from releasehub.db import utcnow
from releasehub.errors import Forbidden
from releasehub.hubapi.deps import client_ip, get_session, raise_denied, requires
from releasehub.hubapi.shapes import iso

router = APIRouter(tags=["accounts"])

NAME = Field(min_length=1, max_length=96)
MAX_DAYS = 3650  # ten years: beyond that a date overflows and "never" is the honest choice


class UserBody(BaseModel):
    name: str = NAME
    email: str | None = Field(default=None, max_length=254)
    emailVerified: bool = False
    fullname: str | None = Field(default=None, max_length=200)
    admin: bool = False


class EmailBody(BaseModel):
    email: str = Field(min_length=1, max_length=254)
    verified: bool = False


class PasswordBody(BaseModel):
    password: str = Field(max_length=sessions.MAX_PASSWORD)


class OrgBody(BaseModel):
    name: str = NAME
    owner: str | None = Field(default=None, max_length=96)
    fullname: str | None = Field(default=None, max_length=200)


class MemberBody(BaseModel):
    role: str = Field(default="write", max_length=16)


class TokenBody(BaseModel):
    user: str | None = Field(default=None, max_length=96)
    name: str = Field(default="default", min_length=1, max_length=100)
    scope: str = Field(default="read", max_length=16)
    expiresInDays: int | None = Field(default=None, le=MAX_DAYS)  # the service refuses 0 and less, saying why


def _user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "name": user.name, "fullname": user.fullname, "email": user.email,
            "emailVerified": user.email_verified, "isAdmin": user.is_admin, "createdAt": iso(user.created_at)}


def _org_json(org: Org, role: str | None = None) -> dict[str, Any]:
    return {"id": org.id, "name": org.name, "fullname": org.fullname, "createdAt": iso(org.created_at),
            "roleInOrg": role}


def _token_json(token: Token) -> dict[str, Any]:
    now = utcnow()
    status = ("revoked" if token.revoked_at else
              "expired" if token.expires_at and token.expires_at <= now else "active")
    return {"id": token.id, "user": token.user.name, "name": token.name, "scope": token.scope,
            "prefix": token.prefix, "createdAt": iso(token.created_at),
            "expiresAt": iso(token.expires_at) if token.expires_at else None, "status": status}


def _for_another(subject: Subject, user: str | None) -> str:
    """The user an account request is about: the caller's own name, or another's for server admins only."""
    if user is None or user == subject.name:
        return subject.name or ""
    raise_denied(decide_subject(subject, Permission.SERVER_ADMIN))
    return user


def _record(session: Session, request: Request, action: str, subject: Subject, **details: Any) -> None:
    audit.record(session, action, actor=subject.name, ip=client_ip(request), details=details)


# ---------------------------------------------------------------------------------------- users


@router.post("/api/admin/users")
def create_user(body: UserBody, request: Request, session: Session = Depends(get_session),
                subject: Subject = Depends(requires(Permission.SERVER_ADMIN))) -> dict[str, Any]:
    """Create a user (server admins)."""
    user = accounts.create_user(session, body.name, email=body.email, fullname=body.fullname, admin=body.admin,
                                email_verified=body.emailVerified)
    out = _user_json(user)
    _record(session, request, "user.created", subject, user=user.name, admin=user.is_admin)
    session.commit()
    return out


@router.get("/api/admin/users")
def list_users(session: Session = Depends(get_session),
               subject: Subject = Depends(requires(Permission.SERVER_ADMIN))) -> list[dict[str, Any]]:
    """Every user (server admins)."""
    return [_user_json(user) for user in accounts.list_users(session)]


@router.put("/api/admin/users/{user}/email")
def set_email(body: EmailBody, request: Request, user: str = Path(max_length=96),
              session: Session = Depends(get_session),
              subject: Subject = Depends(requires(Permission.SERVER_ADMIN))) -> dict[str, Any]:
    """Set a user's email, verified or not: releasehub sends no mail, the operator vouches for it."""
    row = accounts.set_email(session, user, body.email, verified=body.verified)
    out = _user_json(row)
    _record(session, request, "user.email_set", subject, user=row.name, verified=row.email_verified)
    session.commit()
    return out


@router.put("/api/admin/users/{user}/password")
def set_password(body: PasswordBody, request: Request, user: str = Path(max_length=96),
                 session: Session = Depends(get_session),
                 subject: Subject = Depends(requires(Permission.SERVER_ADMIN))) -> dict[str, Any]:
    """Set a user's password for the web pages; their signed-in browser sessions end."""
    row = sessions.set_password(session, user, body.password)
    _record(session, request, "user.password_set", subject, user=row.name)
    session.commit()
    return {"name": row.name, "passwordSet": True}


# -------------------------------------------------------------------------------- organisations


@router.post("/api/orgs")
def create_org(body: OrgBody, request: Request, session: Session = Depends(get_session),
               subject: Subject = Depends(requires(Permission.ORG_ADMIN))) -> dict[str, Any]:
    """Create an organisation with OWNER (default: the caller) as its first admin."""
    owner = _for_another(subject, body.owner)
    org = accounts.create_org(session, body.name, owner=owner, fullname=body.fullname)
    out = {**_org_json(org, "admin" if owner == subject.name else None), "owner": owner}
    _record(session, request, "org.created", subject, org=org.name, owner=owner)
    session.commit()
    return out


@router.get("/api/orgs")
def list_orgs(session: Session = Depends(get_session),
              subject: Subject = Depends(requires(Permission.ACCOUNT_READ))) -> list[dict[str, Any]]:
    """The caller's organisations with their role; every organisation for a server admin."""
    return [_org_json(org, subject.org_roles.get(org.name)) for org in accounts.list_orgs(session)
            if subject.is_admin or org.name in subject.org_roles]


@router.put("/api/orgs/{org}/members/{user}")
def add_member(body: MemberBody, request: Request, org: str = Path(max_length=96), user: str = Path(max_length=96),
               session: Session = Depends(get_session),
               subject: Subject = Depends(requires(Permission.ORG_ADMIN))) -> dict[str, Any]:
    """Add USER to ORG with ROLE, or change their role (ORG's admins, server admins)."""
    raise_denied(decide_org_admin(subject, org))
    membership = accounts.add_member(session, org, user, body.role)
    _record(session, request, "org.member_added", subject, org=org, user=user, role=membership.role)
    session.commit()
    return {"org": org, "user": user, "role": membership.role}


@router.delete("/api/orgs/{org}/members/{user}")
def remove_member(request: Request, org: str = Path(max_length=96), user: str = Path(max_length=96),
                  session: Session = Depends(get_session),
                  subject: Subject = Depends(requires(Permission.ORG_ADMIN))) -> dict[str, Any]:
    """Remove USER from ORG (ORG's admins, server admins)."""
    raise_denied(decide_org_admin(subject, org))
    accounts.remove_member(session, org, user)
    _record(session, request, "org.member_removed", subject, org=org, user=user)
    session.commit()
    return {"org": org, "user": user, "removed": True}


# --------------------------------------------------------------------------------------- tokens


@router.post("/api/tokens")
def create_token(body: TokenBody, request: Request, session: Session = Depends(get_session),
                 subject: Subject = Depends(requires(Permission.ACCOUNT_READ))) -> dict[str, Any]:
    """Create a token for the caller (or, for a server admin, anybody); the secret is answered once."""
    user = _for_another(subject, body.user)
    if body.scope == "write" and not subject.can_write:
        # A leaked read credential must not grow into a write one.
        raise Forbidden("This token is read-only: it may create read tokens only. Create write tokens with a "
                        "write token (or a password sign-in on the web pages).")
    token, secret = accounts.create_token(session, user, name=body.name, scope=body.scope,
                                          expires_in_days=body.expiresInDays)
    out = {**_token_json(token), "token": secret}
    _record(session, request, "token.created", subject, user=user, token=token.id, scope=token.scope)
    session.commit()
    return out


@router.get("/api/tokens")
def list_tokens(user: str | None = Query(default=None, max_length=96), session: Session = Depends(get_session),
                subject: Subject = Depends(requires(Permission.ACCOUNT_READ))) -> list[dict[str, Any]]:
    """The caller's tokens (a server admin: `user=` anybody's), never their secrets."""
    return [_token_json(token) for token in accounts.list_tokens(session, _for_another(subject, user))]


@router.delete("/api/tokens/{token_id}")
def revoke_token(request: Request, token_id: int = Path(ge=1, le=2**31 - 1), session: Session = Depends(get_session),
                 subject: Subject = Depends(requires(Permission.ACCOUNT_READ))) -> dict[str, Any]:
    """Revoke a token: the caller's own, or any for a server admin; it stops working on the next request."""
    anybody = decide_subject(subject, Permission.SERVER_ADMIN).allowed
    token = accounts.revoke_token(session, token_id, owner=None if anybody else subject.name)
    out = _token_json(token)
    _record(session, request, "token.revoked", subject, user=token.user.name, token=token.id)
    session.commit()
    return out
