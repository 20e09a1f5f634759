"""What the server refuses: bytes that do not match their oid, forged upload links, unsafe paths,
oversized and malformed commit payloads. Raw HTTP against the real server, plus the client."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from conftest import pooled_server, start_server, stop_server
from huggingface_hub import HfApi


@pytest.fixture(scope="module", params=["sqlite", "postgres", "s3"])
def server(request: pytest.FixtureRequest, _server_pool, tmp_path_factory):  # type: ignore[no-untyped-def]
    """This module also runs on blobs in a real S3-compatible store (SQLite + SeaweedFS)."""
    return pooled_server(str(request.param), _server_pool, tmp_path_factory, request)

LFS_HEADERS = {"Accept": "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _upload_href(server, repo_id: str, token: str, content: bytes) -> str:
    """A signed single-part upload link for `content`, from the LFS batch API."""
    oid = hashlib.sha256(content).hexdigest()
    response = httpx.post(
        f"{server.url}/{repo_id}.git/info/lfs/objects/batch",
        json={"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
              "objects": [{"oid": oid, "size": len(content)}]},
        headers={**LFS_HEADERS, **_auth(token)}, timeout=30,
    )
    assert response.status_code == 200, response.text
    obj = response.json()["objects"][0]
    return str(obj["actions"]["upload"]["href"])


def _ndjson(*lines: dict) -> bytes:
    return b"\n".join(json.dumps(line).encode() for line in lines) + b"\n"


def _header(summary: str = "test commit", **extra: object) -> dict:
    return {"key": "header", "value": {"summary": summary, "description": "", **extra}}


def _commit(server, repo_id: str, token: str, body: bytes, revision: str = "main") -> httpx.Response:
    return httpx.post(f"{server.url}/api/models/{repo_id}/commit/{revision}", content=body,
                      headers={**NDJSON, **_auth(token)}, timeout=30)


def _head(server, repo_id: str, token: str) -> str:
    response = httpx.get(f"{server.url}/api/models/{repo_id}", headers=_auth(token), timeout=30)
    response.raise_for_status()
    return str(response.json()["sha"])


def _stored(server, sha: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether the server's store (local files or S3) holds a blob under this sha256."""
    return bool(server.blob_store().exists(sha))


def _all_blob_names(server) -> set[str]:  # type: ignore[no-untyped-def]
    return {item.sha256 for item in server.blob_store().iter_blobs()}


# ---------------------------------------------------------------- signed upload links


def test_put_with_wrong_bytes_is_rejected_and_leaves_nothing(server, owner, repo_id: str) -> None:
    content = os.urandom(200_000)
    oid = hashlib.sha256(content).hexdigest()
    href = _upload_href(server, repo_id, owner[1], content)
    forged = bytearray(content)
    forged[1234] ^= 0xFF
    forged_sha = hashlib.sha256(forged).hexdigest()

    response = httpx.put(href, content=bytes(forged), timeout=30)
    assert response.status_code == 400, response.text
    assert response.headers["X-Error-Code"] == "ChecksumMismatch"
    assert "sha256" in response.json()["error"]

    # Neither the declared oid nor the bytes actually sent were stored...
    assert not _stored(server, oid)
    assert not _stored(server, forged_sha)
    assert {oid, forged_sha}.isdisjoint(_all_blob_names(server))
    # ... no temporary file is left behind ...
    assert not [p for p in (server.data_dir / "tmp").iterdir() if p.name.startswith("upload-")
                and p.stat().st_size == len(forged)]
    # ... and no row: a commit naming the oid is refused, nothing moves.
    head = _head(server, repo_id, owner[1])
    refused = _commit(server, repo_id, owner[1], _ndjson(
        _header("names an object that failed verification"),
        {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": len(content)}},
    ))
    assert refused.status_code == 400, refused.text
    assert "never uploaded" in refused.json()["error"]
    assert _head(server, repo_id, owner[1]) == head
    # The batch API still asks for the bytes.
    assert _upload_href(server, repo_id, owner[1], content)

    # The right bytes through the same link are accepted, then the commit goes through.
    assert httpx.put(href, content=content, timeout=30).status_code == 200
    assert server.blob_store().read_bytes(oid) == content
    ok = _commit(server, repo_id, owner[1], _ndjson(
        _header("add w.bin"),
        {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": len(content)}},
    ))
    assert ok.status_code == 200, ok.text
    assert httpx.get(f"{server.url}/{repo_id}/resolve/main/w.bin", timeout=30, follow_redirects=True).content == content


def _with_query(href: str, **changes: str) -> str:
    parts = urlsplit(href)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


def test_put_with_tampered_link_is_forbidden(server, owner, repo_id: str) -> None:
    content = os.urandom(1000)
    href = _upload_href(server, repo_id, owner[1], content)
    sig = parse_qs(urlsplit(href).query)["sig"][0]
    tampered_sig = ("0" if sig[0] != "0" else "1") + sig[1:]
    for bad in (
        _with_query(href, sig=tampered_sig),
        _with_query(href, size="999"),  # a bigger grant than was signed
        _with_query(href, exp="9999999999"),  # a later expiry than was signed
        _with_query(href, sig=""),
    ):
        response = httpx.put(bad, content=content, timeout=30)
        assert response.status_code == 403, (bad, response.text)
    # Another oid under the same signature.
    other = hashlib.sha256(b"other").hexdigest()
    oid = hashlib.sha256(content).hexdigest()
    response = httpx.put(href.replace(oid, other), content=content, timeout=30)
    assert response.status_code == 403
    assert not _stored(server, oid)


def test_put_with_short_or_long_body_is_rejected(server, owner, repo_id: str) -> None:
    content = os.urandom(50_000)
    oid = hashlib.sha256(content).hexdigest()
    href = _upload_href(server, repo_id, owner[1], content)
    short = httpx.put(href, content=content[:-1], timeout=30)
    assert short.status_code == 400, short.text
    assert short.headers["X-Error-Code"] == "ChecksumMismatch"
    empty = httpx.put(href, content=b"", timeout=30)
    assert empty.status_code == 400
    long = httpx.put(href, content=content + b"x", timeout=30)
    assert long.status_code == 400
    assert long.headers["X-Error-Code"] == "ChecksumMismatch"
    assert not _stored(server, oid)


# ---------------------------------------------------------------- paths


BAD_PATHS = [
    "../escape.txt",
    "a/../../escape.txt",
    "a/..",
    "/etc/passwd",
    ".git/config",
    "sub/.git/hooks/post-checkout",
    "a\\b.txt",
    "..\\..\\windows.txt",
    "a//b.txt",
    "trailing/",
    "./a.txt",
    "a/./b.txt",
    "nul\x00byte.txt",
    "new\nline.txt",
    "",
]


@pytest.mark.parametrize("kind", ["file", "lfsFile"])
def test_unsafe_paths_are_refused_and_nothing_is_committed(server, owner, repo_id: str, kind: str) -> None:
    token = owner[1]
    if kind == "lfsFile":
        content = os.urandom(2000)
        assert httpx.put(_upload_href(server, repo_id, token, content), content=content, timeout=30).is_success
        value: dict[str, object] = {"algo": "sha256", "oid": hashlib.sha256(content).hexdigest(),
                                    "size": len(content)}
    else:
        value = {"content": base64.b64encode(b"payload").decode(), "encoding": "base64"}
    head = _head(server, repo_id, token)
    for path in BAD_PATHS:
        body = _ndjson(
            _header(f"unsafe {path!r}"),
            {"key": "file", "value": {"path": "fine.txt", "content": base64.b64encode(b"ok").decode(),
                                      "encoding": "base64"}},
            {"key": kind, "value": {"path": path, **value}},
        )
        response = _commit(server, repo_id, token, body)
        assert response.status_code == 400, (path, response.status_code, response.text)
        assert response.headers["X-Error-Code"] == "InvalidPath", (path, response.text)
        assert _head(server, repo_id, token) == head, path
    files = httpx.get(f"{server.url}/api/models/{repo_id}/tree/main", params={"recursive": "true"},
                      timeout=30).json()
    assert [f["path"] for f in files] == [".gitattributes"]
    # Nothing escaped the data dir either.
    assert not (server.data_dir.parent / "escape.txt").exists()


@pytest.mark.parametrize("path", ["../x", "/abs", ".git", "a\\b", "a//b", "a\x00b"])
def test_unsafe_delete_paths_are_refused(server, owner, repo_id: str, path: str) -> None:
    head = _head(server, repo_id, owner[1])
    response = _commit(server, repo_id, owner[1], _ndjson(
        _header("unsafe delete"), {"key": "deletedFile", "value": {"path": path}},
    ))
    assert response.status_code == 400, response.text
    assert response.headers["X-Error-Code"] == "InvalidPath"
    assert _head(server, repo_id, owner[1]) == head


def test_unsafe_paths_through_preupload(server, owner, repo_id: str) -> None:
    for path in ("../x", "/abs", ".git/config", "a\\b", "a//b", "a\x00b"):
        response = httpx.post(
            f"{server.url}/api/models/{repo_id}/preupload/main",
            json={"files": [{"path": path, "sample": "", "size": 1}]},
            headers=_auth(owner[1]), timeout=30,
        )
        assert response.status_code == 400, (path, response.text)
        assert response.headers["X-Error-Code"] == "InvalidPath"


def test_client_cannot_commit_unsafe_paths(api: HfApi, repo_id: str) -> None:
    """The client refuses some of these itself; what reaches the server is refused there."""
    from huggingface_hub import CommitOperationAdd

    for path in ("../escape.txt", ".git/config", "a//b.txt"):
        with pytest.raises(Exception):
            api.create_commit(repo_id, [CommitOperationAdd(path, b"x")], commit_message="unsafe")
    assert api.list_repo_files(repo_id) == [".gitattributes"]


# ---------------------------------------------------------------- commit payloads


def test_garbage_ndjson_is_a_clear_400(server, owner, repo_id: str) -> None:
    token = owner[1]
    head = _head(server, repo_id, token)
    cases = {
        b"this is not json\n": "not JSON",
        b"\xff\xfe\x00garbage": "not JSON",
        b'{"key": "header", "value": {"summary": "s"}}\n{"key": "file", "value": ': "not JSON",
        b"[1, 2, 3]\n": "'key' and 'value'",
        b'{"key": "header", "value": "summary"}\n': "'key' and 'value'",
        b'{"key": "file", "value": {"path": "a.txt", "content": "YQ=="}}\n': "no header",
        b'{"key": "header", "value": {"summary": "s"}}\n{"key": "explode", "value": {"path": "a"}}\n':
            "unknown operation",
        b'{"key": "header", "value": {"summary": "s"}}\n{"key": "file", "value": {"content": "YQ=="}}\n':
            "no 'path'",
        b'{"key": "header", "value": {"summary": "s"}}\n'
        b'{"key": "file", "value": {"path": "a.txt", "content": "not base64!"}}\n': "base64",
        b'{"key": "header", "value": {"summary": "s"}}\n'
        b'{"key": "lfsFile", "value": {"path": "a.bin", "oid": "abc", "size": 1}}\n': "sha256",
        b'{"key": "header", "value": {"summary": 42}}\n': "summary",
        b'{"key": "header", "value": {"summary": "   "}}\n': "summary",
        b'{"key": "header", "value": {"summary": "s", "parentCommit": 7}}\n': "parentCommit",
        b"": "no header",
    }
    for body, needle in cases.items():
        response = _commit(server, repo_id, token, body)
        assert response.status_code == 400, (body, response.status_code, response.text)
        message = response.json()["error"]
        assert needle.lower() in message.lower(), (body, message)
        assert response.headers.get("X-Error-Message")
    assert _head(server, repo_id, token) == head


def test_commit_needs_a_write_token(server, owner, repo_id: str) -> None:
    body = _ndjson(_header(), {"key": "file", "value": {"path": "a.txt", "content": "YQ=="}})
    anonymous = httpx.post(f"{server.url}/api/models/{repo_id}/commit/main", content=body, headers=NDJSON)
    assert anonymous.status_code == 401
    read_only = server.token(owner[0], scope="read")
    assert _commit(server, repo_id, read_only, body).status_code == 403
    _, stranger = server.user()
    assert _commit(server, repo_id, stranger, body).status_code == 403


@pytest.fixture(scope="module")
def small_limit_server(tmp_path_factory: pytest.TempPathFactory):
    proc = start_server(tmp_path_factory.mktemp("small-limit"), "",
                        extra_env={"RELEASEHUB_MAX_COMMIT_BYTES": "4096"})
    yield proc
    stop_server(proc)


def test_oversized_commit_payload_is_413(small_limit_server) -> None:
    server = small_limit_server
    user, token = server.user()
    repo_id = f"{user}/limits"
    HfApi(endpoint=server.url, token=token).create_repo(repo_id)
    head = _head(server, repo_id, token)
    big = _ndjson(_header("too big"), {"key": "file", "value": {
        "path": "big.txt", "content": base64.b64encode(b"x" * 8000).decode()}})
    # With a Content-Length...
    response = _commit(server, repo_id, token, big)
    assert response.status_code == 413, response.text
    assert response.headers["X-Error-Code"] == "PayloadTooLarge"
    # ... and streamed without one (chunked), which the server must count itself.
    def chunks():
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    streamed = httpx.post(f"{server.url}/api/models/{repo_id}/commit/main", content=chunks(),
                          headers={**NDJSON, **_auth(token)}, timeout=30)
    assert streamed.status_code == 413, streamed.text
    assert _head(server, repo_id, token) == head
    # A payload under the limit still works.
    small = _ndjson(_header("small"), {"key": "file", "value": {
        "path": "small.txt", "content": base64.b64encode(b"x" * 100).decode()}})
    assert _commit(server, repo_id, token, small).status_code == 200
    assert _head(server, repo_id, token) != head


def test_non_ascii_base64_is_a_400_not_a_500(server, owner, repo_id: str) -> None:
    """Found by schemathesis: base64 fields holding non-ASCII text raised ValueError, not binascii.Error."""
    token = owner[1]
    head = _head(server, repo_id, token)
    response = _commit(server, repo_id, token, _ndjson(
        _header("non-ascii"), {"key": "file", "value": {"path": "a.txt", "content": "é=="}}))
    assert response.status_code == 400, response.text
    assert "base64" in response.json()["error"]
    preupload = httpx.post(f"{server.url}/api/models/{repo_id}/preupload/main",
                           json={"files": [{"path": "a.txt", "sample": "\u00c2h", "size": 2}]},
                           headers=_auth(token), timeout=30)
    assert preupload.status_code == 400, preupload.text
    assert _head(server, repo_id, token) == head


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT"])
def test_control_characters_in_names_keep_error_responses_intact(server, owner, method: str) -> None:
    """Found by schemathesis: a control character echoed into X-Error-Message made the server drop
    the response (a 500); a NUL in a name made PostgreSQL raise (a 500)."""
    for name in ("a%0Bb", "a%09b", "a%7Fb", "%C2%85x", "a%00b"):
        url = {
            "GET": f"{server.url}/api/models/{owner[0]}/{name}",
            "HEAD": f"{server.url}/{owner[0]}/{name}/resolve/main/config.json",
            "PUT": f"{server.url}/api/models/{owner[0]}/{name}/settings",
        }[method]
        response = httpx.request(method, url, headers=_auth(owner[1]), json={} if method == "PUT" else None,
                                 timeout=30)
        # PostgreSQL cannot even look up a NUL: 400 there, 404 on SQLite.
        expected = {404, 400} if "%00" in name else {404}
        assert response.status_code in expected, (name, response.status_code, response.text)
        if response.status_code == 404:
            assert response.headers["X-Error-Code"] == "RepoNotFound"
        assert all(" " <= c <= "~" for c in response.headers["X-Error-Message"])
    # NUL in a revision, a query string and a token, on an existing repo.
    _, repo_id = owner[0], f"{owner[0]}/nul-{os.urandom(3).hex()}"
    HfApi(endpoint=server.url, token=owner[1]).create_repo(repo_id)
    for url in (f"{server.url}/api/models/{repo_id}/revision/ma%00in",
                f"{server.url}/api/models/{repo_id}/tree/ma%00in",
                f"{server.url}/{repo_id}/resolve/ma%00in/.gitattributes",
                f"{server.url}/api/models?search=a%00b",
                f"{server.url}/api/models?author=a%00b"):
        response = httpx.request(method if method != "PUT" else "GET", url, headers=_auth(owner[1]), timeout=30)
        assert response.status_code in (400, 404, 405) or response.is_success, (url, response.status_code)
