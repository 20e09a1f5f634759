"""The ASGI application factory."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator
import re
from urllib.parse import unquote

from fastapi import Depends, FastAPI, Request
from sqlalchemy.exc import DataError
from starlette.concurrency import run_in_threadpool

from starlette.types import ASGIApp, Receive, Scope, Send

from releasehub import __version__, apidocs
from releasehub.access import Permission
from releasehub.access.geoip import GeoIP
from releasehub.accounts.admin_routes import router as admin_accounts_router
from releasehub.accounts.routes import router as accounts_router
from releasehub.auditlog import DownloadRecorder
from releasehub.hubapi.access_routes import router as access_router
from releasehub.hubapi.profile_routes import router as profile_router
from releasehub.gateway import Gateway
from releasehub.gateway.errors import GatewayError, gateway_error
from releasehub.gateway.routes import GatewayFastPath
from releasehub.gateway.routes import router as gateway_router
from releasehub.gateway.admin_routes import router as gateway_admin_router
from releasehub.auditlog.routes import router as audit_router
from releasehub.collector import CollectorSchedule
from releasehub.hubapi.storage_routes import router as storage_router
from releasehub.webhooks.checkpoints import CheckpointSchedule
from releasehub.webhooks.dispatcher import Dispatcher
from releasehub.webhooks.targets import parse_networks
from releasehub.webhooks.routes import router as webhook_router
from releasehub.hubapi import errors
from releasehub.hubapi.deps import ENCODED_SLASH, requires
from releasehub.errors import ReleasehubError
from releasehub.hubapi.file_routes import file_access, resolve
from releasehub.hubapi.file_routes import router as file_router
from releasehub.hubapi.repo_routes import router as repo_router
from releasehub.hubapi.tree_routes import router as tree_router
from releasehub.hubapi.upload_routes import router as upload_router
from releasehub.hubapi.copy_routes import router as copy_router
from releasehub import web
from releasehub.requestid import RequestIdMiddleware
from releasehub.services import Services
from releasehub.settings import Settings
from releasehub.xet import service as xet_service
from releasehub.xet.routes import router as xet_router

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


_RESOLVE = re.compile(r"^/(?P<namespace>[^/]+)/(?P<name>[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")


class ResolveFastPath:
    """Hands GET/HEAD of `/{namespace}/{name}/resolve/...` straight to that route's endpoint.

    Downloads are most of a release server's traffic, and FastAPI's generic routing and
    dependency solving cost more than the route's own work (two indexed reads). The endpoint,
    its declared permission (`file_access`) and its errors are exactly those of the registered
    route; only the dispatch is shorter.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            match = _RESOLVE.match(scope["path"])
            if match is not None:
                request = Request(dict(scope, path_params=match.groupdict()), receive)
                try:
                    response = await resolve(request, await file_access(request))
                except ReleasehubError as exc:
                    response = errors.domain_error_response(request, exc)
                except DataError as exc:
                    response = errors.unstorable_value_response(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    if services is None:
        services = Services.build(settings or Settings.from_env())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Temporary files of uploads cut off by a crash are never part of any blob.
        await run_in_threadpool(services.store.sweep_temporary, 24 * 3600)
        xet_service.sweep_spool(services, older_than_seconds=24 * 3600)  # xorb bodies cut off by a crash
        recorder = DownloadRecorder(services.db)
        dispatcher = Dispatcher(services.db, poll_interval=services.settings.webhook_poll_seconds,
                                allowed_networks=parse_networks(services.settings.webhook_allowed_networks))
        app.state.download_recorder = recorder
        app.state.webhook_dispatcher = dispatcher
        app.state.geoip = GeoIP(services.settings.geoip_database) if services.settings.geoip_database else None
        app.state.gateway = Gateway.start(services)
        dispatcher.start()
        # Signed checkpoints of the audit head to the webhooks subscribed to audit.checkpoint.
        # The collector, on a schedule (every replica may run it; see releasehub.collector).
        collecting = None
        if services.settings.gc_interval_seconds > 0:
            collecting = CollectorSchedule(services, services.settings.gc_interval_seconds)
            collecting.start()
        checkpoints = None
        if services.settings.audit_checkpoint_seconds > 0:
            checkpoints = CheckpointSchedule(services.db, services.settings.audit_key_path,
                                             services.settings.audit_checkpoint_seconds,
                                             on_queued=dispatcher.wake)
            checkpoints.start()
        try:
            yield
        finally:
            if checkpoints is not None:
                checkpoints.stop()
            if collecting is not None:
                collecting.stop()
            dispatcher.stop()
            recorder.close()
            await app.state.gateway.close()
            if app.state.geoip is not None:
                app.state.geoip.close()
            services.close()

    app = FastAPI(
        title="releasehub",
        version=__version__,
        summary="A self-hosted model release server that speaks the Hugging Face Hub API.",
        lifespan=lifespan,
        docs_url=None,  # served offline by apidocs.install: the defaults load their assets from a CDN
        redoc_url=None,
    )
    app.state.services = services
    errors.install(app)

    @app.get("/api/health", tags=["server"])
    def health(_: object = Depends(requires(Permission.PUBLIC))) -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    apidocs.install(app)  # /docs, /redoc and /docs/static, before the catch-all repo routes
    web.install_static(app)  # /static/web: the pages' stylesheet

    app.include_router(accounts_router)
    app.include_router(admin_accounts_router)
    app.include_router(repo_router)
    app.include_router(tree_router)
    app.include_router(upload_router)
    app.include_router(copy_router)
    app.include_router(xet_router)
    app.include_router(access_router)
    app.include_router(webhook_router)
    app.include_router(profile_router)
    app.include_router(gateway_router)
    app.include_router(gateway_admin_router)
    app.include_router(audit_router)
    app.include_router(storage_router)
    app.add_exception_handler(GatewayError, gateway_error)  # OpenAI's error shape under /v1
    # The catch-all download route comes last so that /api/... routes match first.
    app.include_router(file_router)
    web.install(app)  # the pages last: /{namespace}/{name} must not shadow an API route
    app.add_middleware(ResolveFastPath)
    app.add_middleware(EncodedSlashMiddleware)
    app.add_middleware(GatewayFastPath)  # gateway calls skip the middleware inside it
    app.add_middleware(RequestIdMiddleware)  # outermost: every HTTP response carries X-Request-Id
    return app


def app_from_env() -> FastAPI:
    """Entry point for server worker processes: settings come from RELEASEHUB_* variables."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(Settings.from_env())
