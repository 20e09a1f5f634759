"""Who is looking at a page, and the permission each page declares.

A page's subject comes from the session cookie (a signed-in browser) or, as for the API, from an
`Authorization: Bearer` token (scripts and the route-permission test). Every page depends on
exactly one of `page_requires()` or `page_repo()`, which enforce the declared `Permission` with
the same `decide` as the API; a refusal becomes an HTML page (`web.routing`), and a hidden repo
shows the same 404 page as a missing one.

Forms carry a CSRF token: an HMAC of the session secret (or, before signing in, of a random
pre-session cookie) under the server's signing key. Requests authenticated by a Bearer header
carry no ambient credential, so they need none.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Callable

from fastapi import Depends, HTTPException, Request, Response
from sqlalchemy.orm import Session

from releasehub.access import Permission
from releasehub.access.decide import decide_subject
from releasehub.accounts import sessions
from releasehub.accounts.subject import ANONYMOUS, Subject
from releasehub.errors import Forbidden
from releasehub.hubapi.deps import RepoContext, get_services, get_session, raise_denied, repo_context, \
    subject_from_header
from releasehub.services import Services

SESSION_COOKIE = "releasehub_session"
PRE_SESSION_COOKIE = "releasehub_presession"
CSRF_FIELD = "csrf_token"
API_PREFIXES = frozenset({"api", "v1"})


@dataclass(frozen=True)
class Viewer:
    """The subject of a page request and how it authenticated."""

    subject: Subject
    by_cookie: bool
    csrf: str | None  # the token this browser's forms carry; None without a cookie to bind it to

    @property
    def signed_in(self) -> bool:
        return not self.subject.anonymous


def _csrf_for(services: Services, basis: str) -> str:
    return hmac.new(services.signing_key, b"csrf:" + basis.encode(), hashlib.sha256).hexdigest()[:40]


def _viewer(request: Request, session: Session, services: Services) -> Viewer:
    cached = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    authorization = request.headers.get("authorization")
    if authorization:
        viewer = Viewer(subject_from_header(session, authorization), by_cookie=False, csrf=None)
    else:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        subject = sessions.subject_of(session, cookie) if cookie else None
        if subject is not None:
            viewer = Viewer(subject, by_cookie=True, csrf=_csrf_for(services, "session:" + cookie))
        else:
            pre = request.cookies.get(PRE_SESSION_COOKIE, "")
            viewer = Viewer(ANONYMOUS, by_cookie=False,
                            csrf=_csrf_for(services, "pre:" + pre) if pre else None)
    request.state.viewer = viewer
    return viewer


def get_viewer(request: Request, session: Session = Depends(get_session),
               services: Services = Depends(get_services)) -> Viewer:
    return _viewer(request, session, services)


def pre_session(request: Request, viewer: Viewer) -> tuple[str, str | None]:
    """The CSRF token of a signed-out browser's form (the sign-in form), and the new pre-session
    cookie to set when the browser has none yet (`set_pre_session`)."""
    if viewer.csrf is not None:
        return viewer.csrf, None
    pre = secrets.token_urlsafe(24)
    services: Services = request.app.state.services
    return _csrf_for(services, "pre:" + pre), pre


def set_pre_session(request: Request, response: Response, pre: str | None) -> None:
    if pre is not None:
        set_cookie(request, response, PRE_SESSION_COOKIE, pre, max_age=3600)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", path="/",
                        secure=request.url.scheme == "https" or _public_https(request))


def _public_https(request: Request) -> bool:
    services: Services = request.app.state.services
    return str(services.settings.public_url or "").startswith("https://")


async def check_csrf(request: Request, viewer: Viewer) -> dict[str, str]:
    """The submitted form, after checking its CSRF token; refuses a form that lacks a valid one."""
    form = await request.form()
    values = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    if viewer.by_cookie or viewer.subject.anonymous:
        sent = values.get(CSRF_FIELD, "")
        if viewer.csrf is None or not hmac.compare_digest(sent.encode(), viewer.csrf.encode()):
            raise Forbidden("This form has expired or did not come from this site. Reload the page and send it again.")
    return values


def page_requires(permission: Permission) -> Callable[..., Viewer]:
    """For pages that show no single repo: enforces `permission` as the API's `requires()` does."""

    def dependency(viewer: Viewer = Depends(get_viewer)) -> Viewer:
        raise_denied(decide_subject(viewer.subject, permission))
        return viewer

    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency


@dataclass
class RepoPage:
    ctx: RepoContext
    viewer: Viewer


def page_repo(permission: Permission) -> Callable[..., RepoPage]:
    """For pages under /{namespace}/{name}: loads the repo and enforces `decide`, as `repo_access` does."""

    def dependency(namespace: str, name: str, viewer: Viewer = Depends(get_viewer),
                   session: Session = Depends(get_session),
                   services: Services = Depends(get_services)) -> RepoPage:
        if namespace in API_PREFIXES:
            # An API URL no route serves (`/api/spaces`): the API's JSON 404, not a page.
            raise HTTPException(404)
        return RepoPage(repo_context(session, viewer.subject, services, namespace, name, permission), viewer)

    dependency.permission = permission  # type: ignore[attr-defined]
    dependency.checks_repo = True  # type: ignore[attr-defined]
    return dependency
