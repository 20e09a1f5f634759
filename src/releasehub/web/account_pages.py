"""Signing in and out of the pages: a password (argon2) or an access token."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from releasehub.access import Permission
from releasehub.accounts import sessions
from releasehub.hubapi.deps import get_session
from releasehub.web.auth import PRE_SESSION_COOKIE, SESSION_COOKIE, Viewer, check_csrf, pre_session, set_pre_session, \
    page_requires, set_cookie
from releasehub.web.routing import PageRoute
from releasehub.web.templating import render

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: `next` must not send a signed-in browser elsewhere."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_form(request: Request, viewer: Viewer, *, error: str | None = None, next_url: str = "/",
                name: str = "", status: int = 200) -> Response:
    csrf, pre = pre_session(request, viewer)
    response = render(request, "login.html", {"error": error, "next": next_url, "name": name, "csrf": csrf},
                      status=status)
    set_pre_session(request, response, pre)
    return response


@router.get("/login")
def login_page(request: Request, next: str | None = None,
               viewer: Viewer = Depends(page_requires(Permission.PUBLIC))) -> Response:
    return _login_form(request, viewer, next_url=_safe_next(next))


@router.post("/login")
async def login(request: Request, viewer: Viewer = Depends(page_requires(Permission.PUBLIC)),
                session: Session = Depends(get_session)) -> Response:
    form = await check_csrf(request, viewer)
    next_url = _safe_next(form.get("next"))
    name, password, token = form.get("username", "").strip(), form.get("password", ""), form.get("token", "").strip()
    signed = None
    if token:
        signed = sessions.sign_in_with_token(session, token)
    elif name and password:
        user = sessions.check_password(session, name, password)
        signed = sessions.SignIn(user, "write") if user is not None else None
    if signed is None:
        message = ("That token is unknown, expired or revoked." if token
                   else "Wrong user name or password." if name or password
                   else "Enter your user name and password, or an access token.")
        return _login_form(request, viewer, error=message, next_url=next_url, name=name, status=400)
    secret = sessions.start(session, signed)
    session.commit()
    response = RedirectResponse(next_url, status_code=303)
    set_cookie(request, response, SESSION_COOKIE, secret, max_age=sessions.SESSION_DAYS * 86400)
    response.delete_cookie(PRE_SESSION_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request, viewer: Viewer = Depends(page_requires(Permission.ACCOUNT_READ)),
                 session: Session = Depends(get_session)) -> Response:
    await check_csrf(request, viewer)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and viewer.by_cookie:
        sessions.end(session, cookie)
        session.commit()
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
