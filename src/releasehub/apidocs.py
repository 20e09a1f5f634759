"""Swagger UI (`/docs`) and ReDoc (`/redoc`) served offline.

FastAPI's default pages load their JS and CSS from a CDN, so they are blank on a machine without
internet access. The same pages (FastAPI's own `get_swagger_ui_html` / `get_redoc_html`) point
here at the assets that the `fastapi-offline` package ships, served from `/docs/static`
("docs" is a reserved namespace, so no repo path can collide with it).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from releasehub.access import Permission
from releasehub.hubapi.deps import requires

STATIC_URL = "/docs/static"
STATIC_DIR = Path(str(files("fastapi_offline") / "static"))


def install(app: FastAPI) -> None:
    """Adds /docs, its OAuth2 redirect, /redoc and their static assets (create the app with
    docs_url=None, redoc_url=None)."""
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"
    router = APIRouter(include_in_schema=False, dependencies=[Depends(requires(Permission.PUBLIC))])

    @router.get("/docs")
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect_url}",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @router.get(redirect_url)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc")
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )

    app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="apidocs-static")
