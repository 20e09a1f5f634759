"""Account endpoints: `whoami-v2`, as `hf auth whoami` reads it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from releasehub.access import Permission
from releasehub.accounts.models import Membership, Org, Token, User
from releasehub.accounts.service import Subject
from releasehub.hubapi.deps import get_session, requires

router = APIRouter()


@router.get("/api/whoami-v2", tags=["accounts"])
def whoami(
    subject: Subject = Depends(requires(Permission.ACCOUNT_READ)), session: Session = Depends(get_session)
) -> dict[str, Any]:
    user = session.get(User, subject.user_id)
    token = session.get(Token, subject.token_id)
    assert user is not None and token is not None
    orgs = session.execute(
        select(Org, Membership.role).join(Membership, Membership.org_id == Org.id).where(
            Membership.user_id == user.id
        ).order_by(Org.name)
    ).all()
    return {
        "type": "user",
        "id": str(user.id),
        "name": user.name,
        "fullname": user.fullname or user.name,
        "email": user.email,
        "emailVerified": user.email_verified,
        "canPay": False,
        "isPro": False,
        "periodEnd": None,
        "avatarUrl": "",
        "isAdmin": user.is_admin,
        "orgs": [
            {"type": "org", "id": str(org.id), "name": org.name, "fullname": org.fullname or org.name,
             "roleInOrg": role, "isEnterprise": False}
            for org, role in orgs
        ],
        "auth": {
            "type": "access_token",
            "accessToken": {
                "displayName": token.name,
                "role": token.scope,
                "createdAt": token.created_at.isoformat(),
            },
        },
    }
