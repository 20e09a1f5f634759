"""Personal settings: the viewer's access tokens and gateway API keys.

A secret is shown once, on the page that answers the POST that made it (status 200, never in a
redirect URL, never stored: the tables keep its sha256). A session signed in with a read token
may mint only read tokens, so a leaked read credential cannot grow into a write one. Revoking
names a token or key by id from a form field; one that is not the viewer's answers exactly as a
missing one does, so nobody learns another user's ids.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from releasehub.access import Permission, decide
from releasehub.access import service as access_service
from releasehub.access.decide import effective_tier
from releasehub.accounts import service as accounts
from releasehub.db import utcnow
from releasehub.errors import BadRequest, Forbidden, NotFound, ReleasehubError
from releasehub.gateway import service as gateway
from releasehub.hubapi.deps import RepoContext, get_services, get_session, raise_denied, repo_context
from releasehub.services import Services
from releasehub.web.auth import Viewer, check_csrf, page_requires
from releasehub.web.routing import PageRoute
from releasehub.web.templating import render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

MAX_LABEL = 100  # the tables' name columns
MAX_DAYS = 3650  # ten years: beyond that a date overflows and "never" is the honest choice
ONCE = "Copy it now; it is not shown again."
# A page that shows a secret must not be kept by any cache, the browser's included.
NO_STORE = {"Cache-Control": "no-store"}


def _label(form: dict[str, str], default: str) -> str:
    label = form.get("name", "").strip() or default
    if len(label) > MAX_LABEL:
        raise BadRequest(f"A name may have at most {MAX_LABEL} characters.")
    return label


def _days(form: dict[str, str]) -> int | None:
    raw = form.get("expires_days", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DAYS:
        raise BadRequest(f"Expiry must be a whole number of days from 1 to {MAX_DAYS}, or empty for never.")
    return int(raw)


def _state(revoked: Any, expires: Any, now: Any) -> str:
    return "revoked" if revoked is not None else "expired" if expires is not None and expires <= now else "active"


# ------------------------------------------------------------------------------------- tokens


def _tokens_page(request: Request, viewer: Viewer, session: Session, *, error: str | None = None,
                 created: dict[str, Any] | None = None, form: dict[str, str] | None = None,
                 status: int = 200) -> Response:
    now = utcnow()
    rows = [{"token": token, "state": _state(token.revoked_at, token.expires_at, now)}
            for token in accounts.list_tokens(session, viewer.subject.name)]
    context = {"tab": "tokens", "tokens": rows, "error": error, "created": created, "form": form or {},
               "can_write": viewer.subject.can_write, "once": ONCE, "scopes": accounts.SCOPES}
    return render(request, "tokens.html", context, status=status, headers=NO_STORE if created else None)


@router.get("/settings/tokens")
def tokens_page(request: Request, viewer: Viewer = Depends(page_requires(Permission.ACCOUNT_READ)),
                session: Session = Depends(get_session)) -> Response:
    return _tokens_page(request, viewer, session)


@router.post("/settings/tokens")
async def create_token(request: Request, viewer: Viewer = Depends(page_requires(Permission.ACCOUNT_READ)),
                       session: Session = Depends(get_session)) -> Response:
    form = await check_csrf(request, viewer)
    try:
        scope = form.get("scope", "read")
        if scope == "write" and not viewer.subject.can_write:
            raise Forbidden("You signed in with a read token, which may create only read tokens. Sign in with "
                            "your password or a write token to create a write token.")
        token, secret = accounts.create_token(session, viewer.subject.name or "", name=_label(form, "web"),
                                              scope=scope, expires_in_days=_days(form))
    except ReleasehubError as exc:
        session.rollback()
        return _tokens_page(request, viewer, session, error=exc.message, form=form, status=exc.status_code)
    session.commit()
    return _tokens_page(request, viewer, session, created={"id": token.id, "name": token.name, "scope": token.scope,
                                                           "secret": secret})


@router.post("/settings/tokens/revoke")
async def revoke_token(request: Request, viewer: Viewer = Depends(page_requires(Permission.ACCOUNT_READ)),
                       session: Session = Depends(get_session)) -> Response:
    form = await check_csrf(request, viewer)
    raw = form.get("token_id", "").strip()
    own = {token.id for token in accounts.list_tokens(session, viewer.subject.name)}
    if not raw.isdigit() or int(raw) not in own:
        # Another user's token and a missing one: the same answer.
        message = f"You have no token with id {raw[:20]!r}."
        return _tokens_page(request, viewer, session, error=message, status=NotFound.status_code)
    accounts.revoke_token(session, int(raw))
    session.commit()
    return RedirectResponse("/settings/tokens", status_code=303)


# --------------------------------------------------------------------------------------- keys


def _visible_repos(session: Session, viewer: Viewer, key_id: str) -> tuple[list[str], int]:
    """A key's repos that the viewer may still see, and how many others (made private since)."""
    now = utcnow()
    shown, hidden = [], 0
    for repo in gateway.key_repos(session, gateway.find_key(session, key_id)):
        if decide(viewer.subject, access_service.repo_policy(repo), Permission.REPO_READ, now).allowed:
            shown.append(repo.repo_id)
        else:
            hidden += 1
    return shown, hidden


def _keys_page(request: Request, viewer: Viewer, session: Session, *, error: str | None = None,
               created: dict[str, Any] | None = None, form: dict[str, str] | None = None,
               status: int = 200) -> Response:
    keys = []
    for key in gateway.list_keys(session, user=viewer.subject.name):
        shown, hidden = _visible_repos(session, viewer, key["key"])
        keys.append({**key, "repos": shown, "hidden_repos": hidden})
    context = {"tab": "keys", "keys": keys, "error": error, "created": created, "form": form or {},
               "once": ONCE, "default_tier": gateway.DEFAULT_TIER}
    return render(request, "keys.html", context, status=status, headers=NO_STORE if created else None)


@router.get("/settings/keys")
def keys_page(request: Request, viewer: Viewer = Depends(page_requires(Permission.ACCOUNT_READ)),
              session: Session = Depends(get_session)) -> Response:
    return _keys_page(request, viewer, session)


def _usable(session: Session, viewer: Viewer, services: Services, repo_id: str) -> RepoContext:
    """The repo, when the viewer may see it (a hidden one is a missing one) and has passed its gate."""
    namespace, _, name = repo_id.partition("/")
    if not namespace or not name or "/" in name:
        raise BadRequest(f"Give the repository as NAMESPACE/NAME, not {repo_id[:200]!r}.")
    ctx = repo_context(session, viewer.subject, services, namespace, name, Permission.REPO_READ)
    if not ctx.team:
        # The gateway lets a key call what its user may read; a self-made key also waits for the gate.
        raise_denied(ctx.decide(Permission.REPO_DOWNLOAD))
    return ctx


def _tier_for(ctx: RepoContext, asked: str) -> str:
    """The tier a self-made key gets: the viewer's own tier on the repo (the team may name any)."""
    if not ctx.policy.rules.has_tiers:
        return asked or gateway.DEFAULT_TIER
    held = effective_tier(ctx.policy, ctx.grant, ctx.now)
    if ctx.team:
        return asked or held or gateway.DEFAULT_TIER
    if held is None:
        raise Forbidden(f"You hold no access tier of {ctx.repo.repo_id}: request one on its access page first.")
    if asked and asked != held:
        raise Forbidden(f"Your access to {ctx.repo.repo_id} is at the tier {held!r}, not {asked!r}: request that "
                        "tier on its access page, or leave the tier empty.")
    return held


@router.post("/settings/keys")
async def create_key(request: Request, viewer: Viewer = Depends(page_requires(Permission.ACCOUNT_READ)),
                     session: Session = Depends(get_session),
                     services: Services = Depends(get_services)) -> Response:
    form = await check_csrf(request, viewer)
    repo_id = form.get("repo", "").strip()
    try:
        ctx = _usable(session, viewer, services, repo_id)
        tier = _tier_for(ctx, form.get("tier", "").strip())
        # The service checks the rest: the repo is hosted and its policy has this tier.
        new = gateway.create_key(session, viewer.subject.name or "", [ctx.repo.repo_id], tier,
                                 actor=viewer.subject.name or "", expires_in_days=_days(form),
                                 name=_label(form, "web"))
    except ReleasehubError as exc:
        session.rollback()
        return _keys_page(request, viewer, session, error=exc.message, form=form, status=exc.status_code)
    session.commit()
    created = {"key": new.key.key_id, "repo": ctx.repo.repo_id, "tier": tier, "secret": new.secret}
    return _keys_page(request, viewer, session, created=created)


@router.post("/settings/keys/revoke")
async def revoke_key(request: Request, viewer: Viewer = Depends(page_requires(Permission.ACCOUNT_READ)),
                     session: Session = Depends(get_session)) -> Response:
    form = await check_csrf(request, viewer)
    key_id = form.get("key", "").strip()
    own = {key["key"] for key in gateway.list_keys(session, user=viewer.subject.name)}
    if key_id not in own:
        # Another user's key and a missing one: the same answer.
        return _keys_page(request, viewer, session, error=f"You have no API key {key_id[:40]!r}.",
                          status=NotFound.status_code)
    gateway.revoke_key(session, key_id, actor=viewer.subject.name or "", reason="revoked by its user")
    session.commit()
    return RedirectResponse("/settings/keys", status_code=303)
