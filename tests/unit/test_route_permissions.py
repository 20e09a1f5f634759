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

# Served by FastAPI itself (the OpenAPI schema) and the static assets of its viewers (a Mount):
# neither reveals repo data. /docs and /redoc are our routes (apidocs) and declare PUBLIC.
FRAMEWORK_ROUTES = {"/openapi.json", "/docs/static", "/static/web"}


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


# ---------------------------------------------------------------- enforcement, not declarations

import re  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402

from releasehub.accounts import service as accounts  # noqa: E402
from releasehub.repos import service as repos  # noqa: E402

# The permissions nobody lacks: every subject may call these routes (each result is filtered).
OPEN = {Permission.PUBLIC, Permission.REPO_LIST}
PARAMS = {"revision": "main", "path": "README.md", "oid": "a" * 64, "number": "1", "status": "pending",
          "webhook_id": "1", "model": "x", "branch": "b", "tag": "t", "user": "owner", "org": "org",
          "token_id": "1", "key_id": "rhk_000000000000"}


def _url(path: str, repo: str) -> str:
    namespace, name = repo.split("/")
    values = {**PARAMS, "namespace": namespace, "name": name}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values[m.group(1)], path)


def test_every_route_refuses_a_subject_lacking_its_permission(tmp_path: Path) -> None:
    """Each route called as a subject without its declared permission is refused (401, 403 or 404),
    and nothing changes: the declaration is the check."""
    app = create_app(Settings(data_dir=tmp_path))
    services = app.state.services
    with services.db.session() as session:
        accounts.create_user(session, "owner")
        accounts.create_user(session, "outsider")
        _, outsider = accounts.create_token(session, "outsider", scope="write")
        _, reader = accounts.create_token(session, "outsider", scope="read")
        repos.create_repo(session, services.store, "owner", "open", author="owner")
        repos.create_repo(session, services.store, "owner", "closed", author="owner", visibility="private")
    # Who lacks each permission, and on which repo.
    lacking: dict[Permission, tuple[str | None, str]] = {
        Permission.REPO_READ: (None, "owner/closed"),
        Permission.REPO_DOWNLOAD: (None, "owner/closed"),
        Permission.REPO_WRITE: (outsider, "owner/open"),
        Permission.REPO_ADMIN: (outsider, "owner/open"),
        Permission.REPO_REVIEW: (outsider, "owner/open"),
        Permission.ACCESS_REQUEST: (None, "owner/open"),
        Permission.ACCOUNT_READ: (None, "owner/open"),
        Permission.REPO_CREATE: (reader, "owner/open"),
        Permission.UPLOAD_LINK: (None, "owner/open"),  # a link whose signature does not verify
        Permission.GATEWAY_CALL: (None, "owner/open"),  # no API key
        Permission.XET_CAS: (None, "owner/open"),  # no CAS token
        Permission.SERVER_ADMIN: (outsider, "owner/open"),  # a write token, not an admin's
        Permission.ORG_ADMIN: (reader, "owner/open"),
    }
    called: set[Permission] = set()
    accepted = []
    with TestClient(app) as client:
        for route in all_routes(app.routes):
            if not isinstance(route, APIRoute):
                continue
            (permission,) = _permissions(route.dependant)
            if permission in OPEN:
                continue
            token, repo = lacking[permission]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            query = {"size": 3, "chunk": 1, "exp": 9999999999, "repo": 1, "user": 1, "sig": "0" * 64}
            for method in sorted(route.methods - {"HEAD"}) or ["HEAD"]:
                answer = client.request(method, _url(route.path, repo), headers=headers, params=query,
                                        json={"name": repo})
                called.add(permission)
                if answer.status_code not in (401, 403, 404):
                    accepted.append(f"{method} {route.path} as {permission}: {answer.status_code} "
                                    f"{answer.text[:200]}")
    assert not accepted, "routes that served a subject lacking their permission:\n" + "\n".join(accepted)
    assert called == set(lacking)
    with services.db.session() as session:
        open_repo = repos.find_repo(session, "owner", "open")
        assert open_repo is not None and repos.find_repo(session, "owner", "closed") is not None
        head = repos.resolve_revision(session, open_repo, "main")
        assert head.parent_oid is None  # no commit landed
        assert set(repos.commit_files(session, head)) == {".gitattributes"}
    services.close()
