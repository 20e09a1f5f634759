"""Server-rendered pages over the same services and the same access decision as the API.

`install(app)` adds the static assets and the page routers; it runs after the API routers, so
that `/api/...`, `/v1/...` and the download routes match first. See `auth` for sign-in, CSRF and
the permission each page declares, `routing` for error pages and security headers, and
`templating` for sanitised markdown.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from releasehub.web import (account_pages, audit_pages, file_pages, list_pages, profile_pages, repo_pages,
                            review_pages, settings_pages, token_pages)
from releasehub.web.templating import STATIC

STATIC_PATH = "/static/web"
# Routers with literal first segments (/login, /settings/tokens, /models, /compare) before the
# /{namespace}/{name} pages, which would otherwise take them for a repo.
ROUTERS = [account_pages.router, token_pages.router, audit_pages.router, settings_pages.router,
           review_pages.router, list_pages.router, file_pages.router, profile_pages.router, repo_pages.router]


def install_static(app: FastAPI) -> None:
    """The stylesheet, before every catch-all route."""
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC), name="web-static")


def install(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
