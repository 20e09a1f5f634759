"""Issue 12: a commit of many regular files (each under the inline limit, as preupload answers
on the Hub) is accepted although its payload is far over 64 MiB: the server spools it to disk and
applies it line by line. Over the cap it is a 413, a bad line a 400; neither moves the branch."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import httpx
import pytest
from conftest import start_server, stop_server
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download

NDJSON = {"Content-Type": "application/x-ndjson"}
FILE_BYTES = 9_000_000  # under the 10 MiB at which preupload says "lfs"


def _text(seed: int) -> bytes:
    """Random printable text (no NUL, no LFS suffix): a regular file by preupload's rules."""
    data = base64.b64encode(os.urandom(FILE_BYTES * 3 // 4))
    return f"{seed:04d}".encode() + data[4:]


def _head(server, repo_id: str, token: str) -> str:
    response = httpx.get(f"{server.url}/api/models/{repo_id}", headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return str(response.json()["sha"])


def _line(key: str, value: dict) -> bytes:
    return json.dumps({"key": key, "value": value}).encode() + b"\n"


def _file_line(path: str, content: bytes) -> bytes:
    return _line("file", {"path": path, "content": base64.b64encode(content).decode(), "encoding": "base64"})


def _no_spool_left(server) -> None:
    if not sys.platform.startswith("linux"):
        return
    fd_dir = Path(f"/proc/{server.process.pid}/fd")
    open_files = []
    for fd in fd_dir.iterdir():
        try:
            open_files.append(os.readlink(fd))
        except OSError:
            continue
    spool_dir = str(server.data_dir / "tmp")
    assert not [f for f in open_files if f.startswith(spool_dir)], open_files
    assert not list((server.data_dir / "tmp").glob("commit-*"))


def test_twelve_regular_files_of_9_mb_land_as_one_commit(server, api: HfApi, repo_id: str, tmp_path: Path) -> None:
    contents = {f"texts/part-{i:02d}.txt": _text(i) for i in range(12)}
    head = api.repo_info(repo_id).sha
    result = api.create_commit(
        repo_id, operations=[CommitOperationAdd(path, data) for path, data in contents.items()],
        commit_message="twelve texts",
    )
    assert result.oid != head
    commits = api.list_repo_commits(repo_id)
    assert commits[0].commit_id == result.oid and commits[1].commit_id == head
    for path, data in contents.items():
        local = hf_hub_download(repo_id, path, endpoint=server.url, token=api.token, cache_dir=tmp_path)
        assert Path(local).read_bytes() == data
    listed = {f.path: f for f in api.list_repo_tree(repo_id, "texts")}
    assert set(listed) == set(contents)
    assert all(f.lfs is None for f in listed.values())  # stored as regular files, as preupload said
    _no_spool_left(server)


def test_a_malformed_line_in_a_large_payload_is_a_400(server, owner, repo_id: str) -> None:
    token = owner[1]
    head = _head(server, repo_id, token)
    good = _text(0)
    body = b"".join([
        _line("header", {"summary": "broken", "description": ""}),
        *(_file_line(f"a-{i}.txt", good) for i in range(4)),
        b'{"key": "file", "value": {"path": "b.txt", "content": \n',
        *(_file_line(f"c-{i}.txt", good) for i in range(2)),
    ])
    assert len(body) > 64 * 1024 * 1024  # the old cap: this payload is parsed, not refused whole
    answer = httpx.post(f"{server.url}/api/models/{repo_id}/commit/main", content=body,
                        headers={**NDJSON, "Authorization": f"Bearer {token}"}, timeout=60)
    assert answer.status_code == 400, answer.text
    assert "Line 6" in answer.json()["error"]
    assert _head(server, repo_id, token) == head
    _no_spool_left(server)


@pytest.fixture(scope="module")
def capped_server(backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    database_url = request.getfixturevalue("postgres_url") if backend == "postgres" else ""
    proc = start_server(tmp_path_factory.mktemp(f"capped-{backend}"), database_url,
                        extra_env={"RELEASEHUB_MAX_COMMIT_BYTES": str(4 * 1024 * 1024)})
    yield proc
    stop_server(proc)


def test_a_payload_over_the_cap_is_a_413_and_moves_nothing(capped_server) -> None:
    server = capped_server
    user, token = server.user()
    repo_id = f"{user}/capped"
    HfApi(endpoint=server.url, token=token).create_repo(repo_id)
    head = _head(server, repo_id, token)
    body = _line("header", {"summary": "too big", "description": ""}) + b"".join(
        _file_line(f"f-{i}.txt", os.urandom(1024 * 1024)) for i in range(4))
    assert len(body) > 4 * 1024 * 1024

    def chunks():  # no Content-Length: the server counts while the body streams in
        for i in range(0, len(body), 256 * 1024):
            yield body[i : i + 256 * 1024]

    answer = httpx.post(f"{server.url}/api/models/{repo_id}/commit/main", content=chunks(),
                        headers={**NDJSON, "Authorization": f"Bearer {token}"}, timeout=60)
    assert answer.status_code == 413, answer.text
    assert answer.headers["X-Error-Code"] == "PayloadTooLarge"
    assert _head(server, repo_id, token) == head
    # Under the cap, the same server takes it.
    small = _line("header", {"summary": "fits", "description": ""}) + _file_line("f.txt", b"x" * 1000)
    fits = httpx.post(f"{server.url}/api/models/{repo_id}/commit/main", content=small,
                      headers={**NDJSON, "Authorization": f"Bearer {token}"}, timeout=60)
    assert fits.status_code == 200, fits.text
    assert _head(server, repo_id, token) != head
    _no_spool_left(server)
