"""Text that is not valid Unicode (a lone surrogate sent as a JSON escape) is refused where it enters,
with a 400 naming the field; the OpenAPI entry of `/resolve`."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from releasehub.errors import BadRequest, InvalidCommit, InvalidPath
from releasehub.hubapi import errors as http_errors
from releasehub.hubapi.upload_routes import parse_commit_payload
from releasehub.text import require_json_text, require_text

LONE = "\ud800"


def test_require_text_passes_real_text_through() -> None:
    assert require_text("héllo 😀", "name") == "héllo 😀"
    require_json_text({"a": ["b", 1, None, {"c": "d"}]}, "doc")


@pytest.mark.parametrize("value", [LONE, "a\udfff", "x\ud83d"])  # a high surrogate without its pair too
def test_require_text_names_the_field(value: str) -> None:
    with pytest.raises(BadRequest) as raised:
        require_text(value, "the tier")
    message = raised.value.message
    assert message.startswith("The tier holds U+D") and "UTF-8" in message
    message.encode("utf-8")  # the message itself can be sent


def test_require_json_text_names_where_in_the_document() -> None:
    with pytest.raises(InvalidCommit) as raised:
        require_json_text({"gate": {"fields": ["ok", "b" + LONE]}}, "the policy", InvalidCommit)
    assert raised.value.message.startswith("The policy['gate']['fields'][1] holds U+D800")
    with pytest.raises(BadRequest) as refused:
        require_json_text({"k" + LONE: 1}, "the policy")
    assert refused.value.message.startswith("The key 'k\\ud800' in the policy holds U+D800")


def _payload(header: Mapping[str, object], *ops: Mapping[str, object]) -> bytes:
    # json.dumps writes a lone surrogate as the escape "\ud800", as a client would send it.
    lines = [json.dumps({"key": "header", "value": header}), *(json.dumps(op) for op in ops)]
    return "\n".join(lines).encode()


FILE = {"key": "file", "value": {"path": "a.txt", "content": base64.b64encode(b"hi").decode()}}


@pytest.mark.parametrize("op", [
    {"key": "file", "value": {"path": "a" + LONE, "content": ""}},
    {"key": "lfsFile", "value": {"path": LONE, "oid": "0" * 64, "size": 1}},
    {"key": "deletedFile", "value": {"path": "x/" + LONE}},
    {"key": "deletedFolder", "value": {"path": LONE + "/"}},
])
def test_commit_paths_are_checked(op: dict[str, object]) -> None:
    with pytest.raises(InvalidCommit) as raised:
        parse_commit_payload(_payload({"summary": "s"}, FILE, op), 100)
    assert raised.value.message.startswith(f"The 'path' on line 3 ({op['key']}) holds U+D800")


@pytest.mark.parametrize("field", ["summary", "description", "parentCommit"])
def test_commit_header_text_is_checked(field: str) -> None:
    header = {"summary": "s", field: "t" + LONE}
    with pytest.raises(InvalidCommit) as raised:
        parse_commit_payload(_payload(header, FILE), 100)
    assert raised.value.message.startswith(f"The commit header's {field!r} holds U+D800")


def test_a_good_commit_payload_still_parses() -> None:
    header, ops = parse_commit_payload(_payload({"summary": "s", "description": "d"}, FILE), 100)
    assert header["summary"] == "s" and len(ops) == 1


def test_an_unchecked_surrogate_is_a_400_not_a_500() -> None:
    """The fallback: a route that forgot to check still answers 400; other encoding errors stay 500."""
    app = FastAPI()
    http_errors.install(app)

    @app.post("/store")
    def store(body: dict[str, object]) -> dict[str, str]:
        return {"stored": str(body["x"]).encode("utf-8").decode()}

    @app.get("/server-bug")
    def server_bug() -> dict[str, str]:
        return {"x": "é".encode("ascii").decode()}

    client = TestClient(app, raise_server_exceptions=False)
    answer = client.post("/store", content=b'{"x": "\\ud800"}', headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.headers["X-Error-Code"] == "BadRequest"
    assert "lone surrogate" in answer.headers["X-Error-Message"]
    assert client.get("/server-bug").status_code == 500


def test_surrogates_in_paths_are_invalid_paths() -> None:
    from releasehub.repos.paths import validate_path

    with pytest.raises(InvalidPath, match="holds U\\+D800"):
        validate_path("weights/" + LONE)


def test_resolve_declares_its_path_parameters(tmp_path: Path) -> None:
    """The route reads its parameters from the request (for speed); the OpenAPI document still has them."""
    from releasehub.app import create_app
    from releasehub.settings import Settings

    app = create_app(Settings.from_env(data_dir=tmp_path))
    entry = app.openapi()["paths"]["/{namespace}/{name}/resolve/{revision}/{path}"]
    assert set(entry) == {"get", "head"}
    for operation in entry.values():
        params = [(p["name"], p["in"], p["required"], p["schema"]["type"]) for p in operation["parameters"]]
        assert params == [(name, "path", True, "string") for name in ("namespace", "name", "revision", "path")]
    # Declared the way FastAPI declares the `{path:path}` of a route that validates its parameters.
    tree = app.openapi()["paths"]["/api/models/{namespace}/{name}/tree/{revision}/{path}"]["get"]
    declared = {p["name"]: p for p in tree["parameters"] if p["in"] == "path"}
    assert declared["path"] == entry["get"]["parameters"][3]
    assert declared["namespace"] == entry["get"]["parameters"][0]
