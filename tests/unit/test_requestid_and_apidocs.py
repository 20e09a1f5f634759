"""Issue 12: every HTTP response carries X-Request-Id, and /docs and /redoc work offline."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from releasehub.accounts import service as accounts
from releasehub.app import create_app
from releasehub.repos import service as repos
from releasehub.settings import Settings


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path))
    services = app.state.services
    with services.db.session() as session:
        accounts.create_user(session, "owner")
        repos.create_repo(session, services.store, "owner", "open", author="owner")
    with TestClient(app) as test_client:
        yield test_client


def _is_generated(value: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{32}", value) is not None


def test_every_kind_of_response_carries_a_request_id(client: TestClient) -> None:
    health = client.get("/api/health")
    assert health.status_code == 200 and _is_generated(health.headers["X-Request-Id"])

    missing = client.get("/api/models/owner/absent")
    assert missing.status_code in (401, 404) and missing.headers["X-Error-Code"] == "RepoNotFound"
    assert _is_generated(missing.headers["X-Request-Id"])

    download = client.get("/owner/open/resolve/main/.gitattributes")  # ResolveFastPath
    assert download.status_code == 200 and _is_generated(download.headers["X-Request-Id"])
    head = client.head("/owner/open/resolve/main/absent.bin")
    assert head.headers["X-Error-Code"] == "EntryNotFound" and _is_generated(head.headers["X-Request-Id"])

    gateway = client.post("/v1/chat/completions", json={"model": "x", "messages": []})  # GatewayFastPath
    assert gateway.status_code == 401 and "error" in gateway.json()
    assert _is_generated(gateway.headers["X-Request-Id"])

    assert health.headers["X-Request-Id"] != missing.headers["X-Request-Id"]  # one per request
    assert len(health.headers.get_list("X-Request-Id")) == 1


def test_a_sane_incoming_request_id_is_echoed(client: TestClient) -> None:
    for path in ("/api/health", "/api/models/owner/absent", "/owner/open/resolve/main/.gitattributes"):
        answer = client.get(path, headers={"X-Request-Id": "client-id-123"})
        assert answer.headers["X-Request-Id"] == "client-id-123"
    longest = "x" * 200
    assert client.get("/api/health", headers={"X-Request-Id": longest}).headers["X-Request-Id"] == longest
    gateway = client.post("/v1/completions", json={}, headers={"X-Request-Id": "abc"})
    assert gateway.headers["X-Request-Id"] == "abc"


@pytest.mark.parametrize("sent", ["x" * 201, "tab\there", "caf\u00e9"])
def test_an_insane_incoming_request_id_is_replaced(client: TestClient, sent: str) -> None:
    answer = client.get("/api/health", headers={"X-Request-Id": sent.encode("utf-8")})  # type: ignore[dict-item]
    assert _is_generated(answer.headers["X-Request-Id"])


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_load_nothing_from_another_host(client: TestClient, page: str) -> None:
    answer = client.get(page)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    html = answer.text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html), html
    assert "cdn" not in html.lower() and "fonts.googleapis" not in html
    scripts = re.findall(r"""<script[^>]*\bsrc\s*=\s*["']([^"']+)["']""", html)
    styles = re.findall(r"""<link[^>]*\bhref\s*=\s*["']([^"']+)["']""", html)
    assert scripts and all(url.startswith("/") for url in scripts + styles), (scripts, styles)
    for url in scripts + styles:
        asset = client.get(url)
        assert asset.status_code == 200, url
        kind = asset.headers["content-type"]
        if url.endswith(".js"):
            assert "javascript" in kind, (url, kind)
        elif url.endswith(".css"):
            assert kind.startswith("text/css"), (url, kind)
        else:
            assert kind.startswith("image/"), (url, kind)  # the favicon
    if page == "/docs":
        assert any(u.endswith(".css") for u in styles)
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs/oauth2-redirect").status_code == 200
