"""Every route of the app declares exactly one Permission (public ones explicitly)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from releasehub.access import Permission
from releasehub.app import create_app
from releasehub.settings import Settings

# Served by FastAPI itself: the OpenAPI schema and its viewers reveal no repo data.
FRAMEWORK_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _permissions(dependant: Dependant) -> list[Permission]:
    found = []
    for dep in dependant.dependencies:
        permission = getattr(dep.call, "permission", None)
        if permission is not None:
            found.append(permission)
        found.extend(_permissions(dep))
    return found


def all_routes(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """Routes of the app, with those of included routers expanded (FastAPI keeps them nested)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from all_routes(nested.routes)
        else:
            yield route


def test_every_route_declares_one_permission(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    undeclared, framework = [], set()
    api_routes = 0
    for route in all_routes(app.routes):
        if isinstance(route, APIRoute):
            api_routes += 1
            declared = _permissions(route.dependant)
            if len(declared) != 1:
                undeclared.append(f"{sorted(route.methods)} {route.path}: {declared}")
        else:
            framework.add(getattr(route, "path", repr(route)))
    assert not undeclared, "routes without exactly one declared permission:\n" + "\n".join(undeclared)
    assert framework == FRAMEWORK_ROUTES
    assert api_routes > 20
    app.state.services.close()


def test_repo_routes_check_the_repo(tmp_path: Path) -> None:
    """Routes with a {namespace}/{name} in their path load the repo through `load_repo_checked` (decide)."""
    app = create_app(Settings(data_dir=tmp_path))
    for route in all_routes(app.routes):
        if isinstance(route, APIRoute) and "{namespace}" in route.path:
            calls = [dep.call for dep in route.dependant.dependencies]
            assert any(getattr(c, "checks_repo", False) for c in calls), route.path
    app.state.services.close()


def test_resolve_fast_path_uses_the_declared_endpoint() -> None:
    """The dispatch shortcut for downloads calls the same checked dependency as the route."""
    import inspect

    from releasehub import app as app_module
    from releasehub.hubapi.file_routes import file_access

    assert file_access.permission is Permission.REPO_DOWNLOAD  # type: ignore[attr-defined]
    source = inspect.getsource(app_module.ResolveFastPath.__call__)
    assert "await file_access(request)" in source
