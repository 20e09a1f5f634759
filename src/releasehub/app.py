"""The ASGI application factory."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator
from urllib.parse import unquote

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from releasehub import __version__
from releasehub.access import Permission
from releasehub.accounts.routes import router as accounts_router
from releasehub.hubapi import errors
from releasehub.hubapi.deps import ENCODED_SLASH, requires
from releasehub.hubapi.file_routes import router as file_router
from releasehub.hubapi.repo_routes import router as repo_router
from releasehub.hubapi.tree_routes import router as tree_router
from releasehub.hubapi.upload_routes import router as upload_router
from releasehub.services import Services
from releasehub.settings import Settings
from releasehub.storage import LocalBlobStore

log = logging.getLogger("releasehub")


class EncodedSlashMiddleware:
    """Keeps URL-encoded slashes ('refs%2Fpr%2F1') inside one path segment.

    Servers decode `%2F` before routing, which would split such a revision into several
    segments. This rebuilds the path from `raw_path`, turning `%2F` into ENCODED_SLASH, which
    the routes turn back into '/' after matching.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path")
            if raw and b"%2f" in raw.lower():
                text = raw.decode("latin-1").split("?", 1)[0]
                text = text.replace("%2F", "%EE%80%80").replace("%2f", "%EE%80%80")
                scope = dict(scope, path=unquote(text))
                assert ENCODED_SLASH in scope["path"]
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    if services is None:
        services = Services.build(settings or Settings.from_env())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if isinstance(services.store, LocalBlobStore):
            # Temporary files of uploads cut off by a crash are never part of any blob.
            services.store.sweep_temporary(older_than_seconds=24 * 3600)
        yield
        services.close()

    app = FastAPI(
        title="releasehub",
        version=__version__,
        summary="A self-hosted model release server that speaks the Hugging Face Hub API.",
        lifespan=lifespan,
    )
    app.state.services = services
    errors.install(app)

    @app.get("/api/health", tags=["server"])
    def health(_: object = Depends(requires(Permission.PUBLIC))) -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.include_router(accounts_router)
    app.include_router(repo_router)
    app.include_router(tree_router)
    app.include_router(upload_router)
    # The catch-all download route comes last so that /api/... routes match first.
    app.include_router(file_router)
    app.add_middleware(EncodedSlashMiddleware)
    return app


def app_from_env() -> FastAPI:
    """Entry point for server worker processes: settings come from RELEASEHUB_* variables."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(Settings.from_env())
