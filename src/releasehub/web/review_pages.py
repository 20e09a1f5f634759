"""Reviewing access requests: the page over the Hub's `user-access-request/{status|handle|grant}`.

It declares the API routes' permission (review: the write role, as on the Hub) and calls the same
service functions with the same commit and webhook wake-up, so a decision taken here is the one
`HfApi.accept_access_request` would have taken. A form error (an unknown user, an expiry in the
past, a tier the policy lacks) is shown on the page, and nothing changes.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse

from releasehub.access import Permission
from releasehub.access import service as access_service
from releasehub.errors import BadRequest, ReleasehubError
from releasehub.hubapi.deps import wake_dispatcher
from releasehub.web.auth import RepoPage, check_csrf, page_repo
from releasehub.web.repo_pages import base_context
from releasehub.web.routing import PageRoute
from releasehub.web.templating import render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Tab = Literal["pending", "accepted", "rejected"]
TABS: tuple[Tab, ...] = ("pending", "accepted", "rejected")
PAGE = 100
# What each button of a row does: the status it asks `handle_request` for, and the notice after.
ACTIONS = {
    "accept": ("accepted", "accepted"),
    "update": ("accepted", "updated"),
    "reject": ("rejected", "rejected"),
    "revoke": ("rejected", "revoked"),
    "cancel": ("pending", "moved back to pending"),
}
NOTICES = {**{key: f"The request was {done}." for key, (_, done) in ACTIONS.items()},
           "grant": "Access was granted."}


def parse_expiry(value: str | None) -> datetime | None:
    """A date from the form's date field: access lasts through that day (UTC)."""
    if not value or not value.strip():
        return None
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise BadRequest(f"Cannot read the expiry {value!r}: give a date such as 2027-01-31.") from None
    return datetime.combine(day, time(23, 59, 59), tzinfo=timezone.utc)


def requestable_tiers(page: RepoPage) -> list[str]:
    """The tiers a reviewer may give: the policy's, less the default one everyone has anyway."""
    doc = access_service.stored_doc(page.ctx.repo)
    default = page.ctx.policy.rules.default_tier
    return [tier.name for tier in doc.tiers if tier.name != default]


def _review(request: Request, page: RepoPage, tab: Tab, *, cursor: int = 0, status: int = 200,
            error: str | None = None, error_for: str | None = None, typed: dict[str, str] | None = None,
            notice: str | None = None) -> Response:
    ctx = page.ctx
    rows = access_service.list_requests(ctx.session, ctx.repo, tab, offset=cursor, limit=PAGE + 1)
    more = len(rows) > PAGE
    doc = access_service.stored_doc(ctx.repo)
    context = {
        **base_context(page, "review"),
        "tabs": TABS,
        "status": tab,
        "rows": [{"row": row, "user": user, "state": access_service.status_of(row, ctx.now)}
                 for row, user in rows[:PAGE]],
        "next_cursor": cursor + PAGE if more else None,
        "tiers": requestable_tiers(page),
        "grantable": bool(ctx.repo.gated) or bool(doc.tiers),
        "error": error,
        "error_for": error_for,
        "typed": typed or {},
        "notice": NOTICES.get(notice or ""),
    }
    return render(request, "review.html", context, status=status)


def _form_status(exc: ReleasehubError) -> int:
    # A name in a form that matches no one is a bad form, not a missing page.
    return 400 if exc.status_code == 404 else exc.status_code


def _tab_of(value: str | None) -> Tab:
    for tab in TABS:
        if value == tab:
            return tab
    return "pending"


@router.get("/{namespace}/{name}/settings/access-requests")
def review_page(request: Request, status: Tab = Query("pending"), cursor: int = Query(0, ge=0, le=10**9),
                notice: str | None = None,
                page: RepoPage = Depends(page_repo(Permission.REPO_REVIEW))) -> Response:
    return _review(request, page, status, cursor=cursor, notice=notice)


@router.post("/{namespace}/{name}/settings/access-requests/handle")
async def handle(request: Request, page: RepoPage = Depends(page_repo(Permission.REPO_REVIEW))) -> Response:
    """One row's button: accept (tier, expiry), reject or revoke (reason), or cancel (back to pending)."""
    ctx = page.ctx
    form = await check_csrf(request, page.viewer)
    tab = _tab_of(form.get("tab"))
    action = form.get("action", "")
    request_id = form.get("request_id", "")
    try:
        if action not in ACTIONS:
            raise BadRequest(f"Unknown action {action!r}: use accept, reject, revoke or cancel.")
        wanted, _ = ACTIONS[action]
        accepting = wanted == "accepted"
        # Each field goes with its own action only, as the API's body does (a reason with a rejection).
        reason = (form.get("reason") or "").strip() if wanted == "rejected" else ""
        access_service.handle_request(
            ctx.session, ctx.repo, ctx.subject.name or "", user=None, request_id=request_id or None,
            status=wanted, reason=reason or None,
            expires_at=parse_expiry(form.get("expires")) if accepting else None,
            tier=(form.get("tier") or None) if accepting else None, now=ctx.now)
    except ReleasehubError as exc:
        ctx.session.rollback()
        return _review(request, page, tab, status=_form_status(exc), error=exc.message,
                       error_for=request_id or "handle", typed=form)
    ctx.session.commit()
    wake_dispatcher(request)
    return RedirectResponse(f"/{ctx.repo.repo_id}/settings/access-requests?status={tab}&notice={action}",
                            status_code=303)


@router.post("/{namespace}/{name}/settings/access-requests/grant")
async def grant(request: Request, page: RepoPage = Depends(page_repo(Permission.REPO_REVIEW))) -> Response:
    """Access without a request: a user name, a tier, an expiry."""
    ctx = page.ctx
    form = await check_csrf(request, page.viewer)
    tab = _tab_of(form.get("tab"))
    user = (form.get("user") or "").strip()
    try:
        if not user:
            raise BadRequest("Name the user to grant access to.")
        expires_at = parse_expiry(form.get("expires"))
        if expires_at is not None and expires_at <= ctx.now:
            # `handle_request` refuses this itself; `grant_access` (and so the API's grant) does not yet.
            raise BadRequest("The expiry must lie in the future.")
        access_service.grant_access(ctx.session, ctx.repo, ctx.subject.name or "", user,
                                    tier=form.get("tier") or None, expires_at=expires_at, now=ctx.now)
    except ReleasehubError as exc:
        ctx.session.rollback()
        return _review(request, page, tab, status=_form_status(exc), error=exc.message, error_for="grant",
                       typed=form)
    ctx.session.commit()
    wake_dispatcher(request)
    return RedirectResponse(f"/{ctx.repo.repo_id}/settings/access-requests?status=accepted&notice=grant",
                            status_code=303)
