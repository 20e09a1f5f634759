"""Bad input over HTTP: text that is not valid Unicode, dangerous paths; `whoami`; a server started
from a directory holding stray modules. Runs on SQLite and PostgreSQL (the `server` fixture)."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import start_server, stop_server

LONE = "\ud800"  # json.dumps sends it as the escape "\ud800"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_json(server: Any, path: str, token: str, body: Any, method: str = "POST") -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", content=json.dumps(body).encode(),
                         headers={**auth(token), "Content-Type": "application/json"}, timeout=30)


def commit(server: Any, repo_id: str, token: str, header: dict[str, Any], *ops: dict[str, Any]) -> httpx.Response:
    lines = [json.dumps({"key": "header", "value": header}), *(json.dumps(op) for op in ops)]
    return httpx.post(f"{server.url}/api/models/{repo_id}/commit/main", content="\n".join(lines).encode(),
                      headers={**auth(token), "Content-Type": "application/x-ndjson"}, timeout=30)


def file_op(path: str, content: bytes = b"hi") -> dict[str, Any]:
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(content).decode()}}


def assert_bad(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.headers["X-Error-Code"] in ("BadRequest", "InvalidPath")
    message = response.headers["X-Error-Message"]
    for word in words:
        assert word in message, message
    assert words[0] in response.json()["error"]


@pytest.fixture
def repo(server: Any) -> tuple[str, str]:
    user, token = server.user()
    repo_id = f"{user}/hard-{uuid.uuid4().hex[:6]}"
    created = post_json(server, "/api/repos/create", token, {"name": repo_id.split("/")[1], "type": "model"})
    assert created.status_code == 200, created.text
    return repo_id, token


@pytest.mark.parametrize("header, op, named", [
    ({"summary": "s"}, file_op("weights/a" + LONE), "'path' on line 2 (file)"),
    ({"summary": "s"}, {"key": "deletedFile", "value": {"path": LONE}}, "'path' on line 2 (deletedFile)"),
    ({"summary": "s" + LONE}, file_op("a.txt"), "'summary'"),
    ({"summary": "s", "description": "d" + LONE}, file_op("a.txt"), "'description'"),
])
def test_a_lone_surrogate_in_a_commit_is_a_400(server: Any, repo: tuple[str, str], header: dict[str, Any],
                                               op: dict[str, Any], named: str) -> None:
    repo_id, token = repo
    assert_bad(commit(server, repo_id, token, header, op), named, "U+D800", "UTF-8")
    assert "Traceback" not in server.log()[-5000:]


@pytest.mark.parametrize("path, words", [
    (".GIT/config", ("'.git/'",)),
    ("a/.Git/x", ("'.git/'",)),
    ("model\u202etxt.safetensors", ("U+202E", "bidirectional")),
    ("a\u200bb.bin", ("U+200B", "invisible")),
])
def test_dangerous_paths_are_refused(server: Any, repo: tuple[str, str], path: str, words: tuple[str, ...]) -> None:
    repo_id, token = repo
    answer = commit(server, repo_id, token, {"summary": "s"}, file_op(path))
    assert answer.status_code == 400 and answer.headers["X-Error-Code"] == "InvalidPath", answer.text
    for word in words:
        assert word in answer.headers["X-Error-Message"]


CARD = "---\nlicense: mit\nextra_gated_fields:\n  Name: text\n  Uses: text\n---\n# Gated\n"


def test_a_lone_surrogate_in_an_access_request_is_a_400(server: Any, repo: tuple[str, str]) -> None:
    repo_id, token = repo
    assert commit(server, repo_id, token, {"summary": "card"}, file_op("README.md", CARD.encode())).status_code == 200
    gated = post_json(server, f"/api/models/{repo_id}/settings", token, {"gated": "manual"}, method="PUT")
    assert gated.status_code == 200, gated.text
    _, requester = server.user()
    terms = httpx.get(f"{server.url}/api/models/{repo_id}/access-terms", headers=auth(requester)).json()
    base = {"acceptLicense": True, "licenseSha256": terms["license"]["sha256"]}
    path = f"/api/models/{repo_id}/access-request"
    assert_bad(post_json(server, path, requester, {**base, "fields": {"Name": "Ada" + LONE, "Uses": "x"}}),
               "access form field 'Name'", "U+D800")
    assert_bad(post_json(server, path, requester, {**base, "fields": {"Name": "Ada", "Uses": ["x", LONE]}}),
               "access form field 'Uses'[1]")
    assert_bad(post_json(server, path, requester, {**base, "fields": {"Name": "Ada", "X" + LONE: "y"}}),
               "field name 'X\\ud800'")
    # The tier is a typed field: pydantic refuses it, naming it.
    tier = post_json(server, path, requester, {**base, "fields": {"Name": "Ada"}, "tier": LONE})
    assert tier.status_code == 422 and "body.tier" in tier.headers["X-Error-Message"]
    # Nothing was recorded; a good request still goes through.
    ok = post_json(server, path, requester, {**base, "fields": {"Name": "Ada", "Uses": "research"}})
    assert ok.status_code == 200, ok.text
    assert ok.json()["fields"] == {"Name": "Ada", "Uses": "research"}


def test_a_lone_surrogate_in_a_policy_document_is_a_400(server: Any, repo: tuple[str, str]) -> None:
    repo_id, token = repo
    answer = post_json(server, f"/api/models/{repo_id}/policy", token, {"gated": "manual", "note": LONE},
                       method="PUT")
    assert_bad(answer, "policy document['note']", "U+D800")


def test_undecodable_percent_escapes_in_a_url_are_not_a_server_error(server: Any, repo: tuple[str, str]) -> None:
    """%ED%A0%80 (a surrogate's UTF-8 form) decodes to replacement characters: just a name that is not found."""
    repo_id, token = repo
    for path in (f"/api/models/{repo_id}%ED%A0%80", f"/{repo_id}/resolve/main/a%ED%A0%80",
                 f"/api/models/{repo_id}/revision/ma%ED%A0%80in"):
        answer = httpx.get(f"{server.url}{path}", headers=auth(token), timeout=30)
        assert answer.status_code == 404, (path, answer.status_code, answer.text)


@pytest.mark.parametrize("email, verified", [(None, False), ("a@example.org", False), ("b@example.org", True)])
def test_whoami_reports_whether_the_email_is_verified(server: Any, email: str | None, verified: bool) -> None:
    _, token = server.user(email=email, email_verified=verified)
    me = httpx.get(f"{server.url}/api/whoami-v2", headers=auth(token), timeout=30).json()
    assert me["email"] == email and me["emailVerified"] is verified


def test_the_server_never_imports_from_its_working_directory(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m releasehub serve` started in a directory holding a broken `h2.py` (which httpcore imports
    in the worker) and `yaml.py` (which the CLI imports) still serves."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for module in ("h2", "yaml", "fastapi", "sqlalchemy"):
        (cwd / f"{module}.py").write_text(f"raise RuntimeError('the stray {module}.py in the cwd was imported')\n")
    monkeypatch.chdir(cwd)  # the server process inherits it
    proc = start_server(tmp_path / "data", "")
    try:
        assert httpx.get(f"{proc.url}/api/health", timeout=10).json()["status"] == "ok"
        # A route that uses the libraries the stray files shadow.
        assert httpx.get(f"{proc.url}/api/models", timeout=10).status_code == 200
        assert "stray" not in proc.log()
    finally:
        stop_server(proc)


def test_a_cursor_past_the_databases_integers_is_a_422(server, api, repo_id, owner) -> None:  # type: ignore[no-untyped-def]
    """Found by schemathesis (another seed): SQLite's integers end at 2^63 - 1, and a cursor past them was a 500."""
    huge = "17846952642402098673090560"
    for path in (f"/api/models/{repo_id}/user-access-request/pending", f"/api/models/{repo_id}/tree/main"):
        answer = httpx.get(f"{server.url}{path}", params={"cursor": huge},
                           headers={"Authorization": f"Bearer {owner[1]}"}, timeout=30)
        assert answer.status_code == 422, (path, answer.status_code, answer.text)


def test_a_body_cut_off_by_the_client_is_no_server_error(server: Any, repo: tuple[str, str]) -> None:
    """A client that closes the connection in the middle of an upload (cancelled, crashed) leaves
    nothing stored and one line in the log, not a traceback."""
    import socket
    import time

    from test_xet import cas_headers

    repo_id, token = repo
    cas = cas_headers(server, repo_id, token)["Authorization"]
    host, port = server.url.removeprefix("http://").split(":")
    for path, authorization in ((f"/api/models/{repo_id}/blobs?size=8388608", f"Bearer {token}"),
                                ("/v1/xorbs/default/" + "ab" * 32, cas)):
        before = len(server.log())
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall((f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {authorization}\r\n"
                          "Content-Type: application/octet-stream\r\nContent-Length: 8388608\r\n\r\n").encode())
            sock.sendall(b"x" * 1024 * 1024)  # an eighth of what it announced, then gone
        deadline = time.monotonic() + 30
        said = "client disconnected during POST " + path.split("?")[0]
        while said not in server.log()[before:] and time.monotonic() < deadline:
            time.sleep(0.1)
        logged = server.log()[before:]
        assert said in logged, logged[-3000:]
        assert "Traceback" not in logged, logged[-3000:]
