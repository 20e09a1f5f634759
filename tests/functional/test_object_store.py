"""Blobs in a real S3-compatible store (SeaweedFS): the 302 to a presigned URL and what it may
never do, the proxy setting, multipart uploads straight to the store, and the collector.

(The download, upload and integrity modules also run whole on this store: their `backend`
params include "s3".)
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import ServerProcess, start_server, stop_server
from huggingface_hub import HfApi, hf_hub_download

from releasehub.collector import collect
from releasehub.repos.models import Blob
from releasehub.services import Services
from releasehub.settings import Settings

WEIGHTS = random.Random(7).randbytes(300_000)
NOTES = b"regular file, served by the server itself\n"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def s3_server(object_store, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    proc = start_server(tmp_path_factory.mktemp("s3-server"), "", extra_env={
        **object_store.env(), "RELEASEHUB_GC_INTERVAL_SECONDS": "0",
        "RELEASEHUB_MULTIPART_THRESHOLD_BYTES": str(6 * 1024 * 1024),
        "RELEASEHUB_MULTIPART_CHUNK_BYTES": str(5 * 1024 * 1024)})
    yield proc
    stop_server(proc)


@pytest.fixture(scope="module")
def proxy_server(object_store, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    proc = start_server(tmp_path_factory.mktemp("s3-proxy"), "", extra_env={
        **object_store.env(), "RELEASEHUB_STORAGE_PROXY": "1", "RELEASEHUB_GC_INTERVAL_SECONDS": "0"})
    yield proc
    stop_server(proc)


def _publish(server: ServerProcess, private: bool = False) -> tuple[str, str, str, str]:
    """A repo with an LFS file and a regular one; returns (repo_id, owner token, commit, weights sha256)."""
    user, token = server.user()
    api = HfApi(endpoint=server.url, token=token)
    repo_id = f"{user}/s3-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, private=private)
    info = api.upload_folder(repo_id=repo_id, folder_path=_folder(server.data_dir), commit_message="weights")
    return repo_id, token, info.oid, hashlib.sha256(WEIGHTS).hexdigest()


def _folder(base: Path) -> Path:
    folder = base / f"upload-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    (folder / "notes.txt").write_bytes(NOTES)
    return folder


def test_lfs_download_is_a_302_to_a_presigned_url_with_the_hubs_headers(s3_server, object_store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    repo_id, token, commit, sha = _publish(s3_server, private=True)
    url = f"{s3_server.url}/{repo_id}/resolve/main/model.safetensors"
    answer = httpx.get(url, headers=_auth(token))
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert urlsplit(location).netloc == urlsplit(object_store.endpoint).netloc
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=900" in location
    assert answer.headers["x-repo-commit"] == commit
    assert answer.headers["x-linked-etag"] == f'"{sha}"' == answer.headers["etag"]
    assert answer.headers["x-linked-size"] == str(len(WEIGHTS))
    assert answer.headers["cache-control"] == "private, no-store"
    # HEAD answers from the database (the store is not asked), with the same headers and no Location,
    # so that the client's download is a GET here, which the audit log records.
    head = httpx.head(url, headers=_auth(token))
    assert head.status_code == 200 and "location" not in head.headers
    assert head.headers["x-repo-commit"] == commit and head.headers["x-linked-size"] == str(len(WEIGHTS))
    assert head.headers["content-length"] == str(len(WEIGHTS))
    # The store serves the bytes and ranges itself, without the token.
    direct = httpx.get(location, headers={"Range": "bytes=10-19"})
    assert direct.status_code == 206 and direct.content == WEIGHTS[10:20]
    # The unchanged client: HEAD, then the presigned GET (it drops the token for the other origin).
    path = hf_hub_download(repo_id, "model.safetensors", endpoint=s3_server.url, token=token,
                           cache_dir=str(tmp_path / "cache"))
    assert Path(path).read_bytes() == WEIGHTS
    # A regular file is served by the server, as by the Hub.
    notes = httpx.get(f"{s3_server.url}/{repo_id}/resolve/main/notes.txt", headers=_auth(token))
    assert notes.status_code == 200 and notes.content == NOTES


def test_a_denied_subject_never_gets_a_location(s3_server) -> None:  # type: ignore[no-untyped-def]
    repo_id, token, _, _ = _publish(s3_server, private=True)
    _, stranger = s3_server.user()
    url = f"{s3_server.url}/{repo_id}/resolve/main/model.safetensors"
    missing = f"{s3_server.url}/{repo_id.split('/')[0]}/no-such-repo/resolve/main/model.safetensors"
    for method in ("HEAD", "GET"):
        for headers in ({}, _auth(stranger)):
            hidden = httpx.request(method, url, headers=headers)
            absent = httpx.request(method, missing, headers=headers)
            assert hidden.status_code in (401, 404)
            assert "location" not in hidden.headers
            # A hidden repo answers as a missing one.
            assert (hidden.status_code, hidden.headers.get("x-error-code")) == \
                   (absent.status_code, absent.headers.get("x-error-code"))
            assert hidden.content.replace(repo_id.split("/")[1].encode(), b"X") == \
                   absent.content.replace(b"no-such-repo", b"X")


def test_download_is_recorded_at_the_redirect(s3_server) -> None:  # type: ignore[no-untyped-def]
    from releasehub.auditlog.models import AuditEvent
    from sqlalchemy import select

    repo_id, token, _, _ = _publish(s3_server)
    httpx.head(f"{s3_server.url}/{repo_id}/resolve/main/model.safetensors", headers=_auth(token))
    # The unchanged client, over plain HTTP: HEAD, then a GET here that is redirected to the store.
    import huggingface_hub.constants as hf_constants

    xet = hf_constants.HF_HUB_DISABLE_XET
    hf_constants.HF_HUB_DISABLE_XET = True
    try:
        path = hf_hub_download(repo_id, "model.safetensors", endpoint=s3_server.url, token=token,
                               cache_dir=str(s3_server.data_dir / f"cache-{uuid.uuid4().hex[:6]}"))
    finally:
        hf_constants.HF_HUB_DISABLE_XET = xet
    assert Path(path).read_bytes() == WEIGHTS
    deadline = time.monotonic() + 10
    while True:
        with s3_server.db.session() as session:
            events = session.scalars(select(AuditEvent).where(
                AuditEvent.repo == repo_id, AuditEvent.action == "file.downloaded")).all()
        if events or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [e.path for e in events] == ["model.safetensors"]  # the GET, not the HEAD


def test_proxy_setting_sends_the_bytes_with_ranges(proxy_server) -> None:  # type: ignore[no-untyped-def]
    repo_id, token, commit, sha = _publish(proxy_server)
    url = f"{proxy_server.url}/{repo_id}/resolve/main/model.safetensors"
    head = httpx.head(url, headers=_auth(token))
    assert head.status_code == 200 and "location" not in head.headers
    assert head.headers["content-length"] == str(len(WEIGHTS)) and head.headers["x-repo-commit"] == commit
    whole = httpx.get(url, headers=_auth(token))
    assert whole.status_code == 200 and whole.content == WEIGHTS
    part = httpx.get(url, headers={**_auth(token), "Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == WEIGHTS[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(WEIGHTS)}"
    tail = httpx.get(url, headers={**_auth(token), "Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == WEIGHTS[-7:]
    past = httpx.get(url, headers={**_auth(token), "Range": f"bytes={len(WEIGHTS)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(WEIGHTS)}"  # RFC 9110
    empty_suffix = httpx.get(url, headers={**_auth(token), "Range": "bytes=-0"})
    assert empty_suffix.status_code == 416 and empty_suffix.headers["content-range"] == f"bytes */{len(WEIGHTS)}"


def test_multipart_parts_go_straight_to_the_store_and_are_verified(s3_server, object_store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    user, token = s3_server.user()
    api = HfApi(endpoint=s3_server.url, token=token)
    repo_id = f"{user}/s3-multipart"
    api.create_repo(repo_id)
    content = random.Random(3).randbytes(11 * 1024 * 1024)  # three parts of 5 MiB
    oid = hashlib.sha256(content).hexdigest()
    batch = httpx.post(f"{s3_server.url}/{repo_id}.git/info/lfs/objects/batch", headers=_auth(token), json={
        "operation": "upload", "transfers": ["basic", "multipart"], "hash_algo": "sha256",
        "objects": [{"oid": oid, "size": len(content)}]}).json()
    header = batch["objects"][0]["actions"]["upload"]["header"]
    part_urls = [header[k] for k in sorted((k for k in header if k.isdigit()), key=int)]
    assert len(part_urls) == 3
    assert all(urlsplit(u).netloc == urlsplit(object_store.endpoint).netloc for u in part_urls)
    # The unchanged client uploads through those links, and the server verifies before publishing.
    path = tmp_path / "big.bin"
    path.write_bytes(content)
    api.upload_file(path_or_fileobj=str(path), path_in_repo="big.bin", repo_id=repo_id)
    got = hf_hub_download(repo_id, "big.bin", endpoint=s3_server.url, token=token, cache_dir=str(tmp_path / "c"))
    assert Path(got).read_bytes() == content


def test_multipart_with_other_bytes_publishes_nothing(s3_server) -> None:  # type: ignore[no-untyped-def]
    user, token = s3_server.user()
    HfApi(endpoint=s3_server.url, token=token).create_repo(f"{user}/s3-forged")
    claimed = random.Random(4).randbytes(6 * 1024 * 1024 + 10)
    sent = bytearray(claimed)
    sent[-1] ^= 0xFF
    oid = hashlib.sha256(claimed).hexdigest()
    batch = httpx.post(f"{s3_server.url}/{user}/s3-forged.git/info/lfs/objects/batch", headers=_auth(token), json={
        "operation": "upload", "transfers": ["basic", "multipart"], "hash_algo": "sha256",
        "objects": [{"oid": oid, "size": len(claimed)}]}).json()
    action = batch["objects"][0]["actions"]["upload"]
    chunk = int(action["header"]["chunk_size"])
    etags = []
    for number in (1, 2):
        piece = bytes(sent[(number - 1) * chunk:number * chunk])
        answer = httpx.put(action["header"][str(number)], content=piece)
        assert answer.status_code == 200
        etags.append({"partNumber": number, "etag": answer.headers["etag"]})
    done = httpx.post(action["href"], json={"oid": oid, "parts": etags})
    assert done.status_code == 400 and done.headers["x-error-code"] == "ChecksumMismatch"
    store = s3_server.blob_store()
    assert not store.exists(oid) and not store.exists(hashlib.sha256(sent).hexdigest())
    # Nothing of the upload is left in the store either: the failed completion removed it.
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix + "uploads/").get("Contents", [])
    assert listed == []
    with s3_server.db.session() as session:
        assert session.get(Blob, oid) is None


def _services(server: ServerProcess) -> Services:
    """The server's services, opened beside it (same database, same store)."""
    store = server.blob_store()
    settings = Settings.from_env({**(server.env or {}), "RELEASEHUB_DATA_DIR": str(server.data_dir),
                                  "RELEASEHUB_DATABASE_URL": server.database_url})
    services = Services.build(settings, migrate=False)
    services.store = store
    return services


def test_collector_removes_only_what_no_commit_names(s3_server) -> None:  # type: ignore[no-untyped-def]
    repo_id, token, _, kept_sha = _publish(s3_server)
    user = repo_id.split("/")[0]
    # An upload never committed, through the single-pass route.
    orphan = b"uploaded, never committed " + uuid.uuid4().bytes
    answer = httpx.post(f"{s3_server.url}/api/models/{repo_id}/blobs", params={"size": len(orphan)},
                        content=orphan, headers=_auth(token))
    orphan_sha = answer.json()["oid"]
    services = _services(s3_server)
    try:
        store = services.store
        assert store.exists(orphan_sha) and store.exists(kept_sha)
        # Young: kept.
        assert orphan_sha not in collect(services, grace_seconds=3600).removed
        assert store.exists(orphan_sha)
        dry = collect(services, grace_seconds=0, dry_run=True)
        assert orphan_sha in dry.removed and kept_sha not in dry.removed and store.exists(orphan_sha)
        result = collect(services, grace_seconds=0)
        assert orphan_sha in result.removed and kept_sha not in result.removed
        assert not store.exists(orphan_sha) and store.exists(kept_sha)
        with services.db.session() as session:
            assert session.get(Blob, orphan_sha) is None
        # The claim went with it: a commit naming the collected oid is refused, nothing moves.
        line = ('{"key":"header","value":{"summary":"names a collected blob"}}\n'
                f'{{"key":"lfsFile","value":{{"path":"x.bin","algo":"sha256","oid":"{orphan_sha}",'
                f'"size":{len(orphan)}}}}}\n')
        refused = httpx.post(f"{s3_server.url}/api/models/{repo_id}/commit/main", content=line,
                             headers={**_auth(token), "Content-Type": "application/x-ndjson"})
        assert refused.status_code == 400 and "never uploaded" in refused.json()["error"]
        # The committed file still downloads.
        path = hf_hub_download(repo_id, "model.safetensors", endpoint=s3_server.url, token=token,
                               cache_dir=str(s3_server.data_dir / f"cache-{user}"))
        assert Path(path).read_bytes() == WEIGHTS
    finally:
        services.close()


def test_collector_racing_commits_never_removes_a_named_blob(s3_server) -> None:  # type: ignore[no-untyped-def]
    """Commits that name old, unreferenced blobs while the collector runs with no grace: every blob
    a commit ended up naming is still stored, and every commit that failed said to upload again."""
    user, token = s3_server.user()
    api = HfApi(endpoint=s3_server.url, token=token)
    repo_id = f"{user}/s3-race"
    api.create_repo(repo_id)
    blobs = []
    for i in range(24):
        data = f"race blob {i} {uuid.uuid4()}".encode()
        sha = httpx.post(f"{s3_server.url}/api/models/{repo_id}/blobs", params={"size": len(data)}, content=data,
                         headers=_auth(token)).json()["oid"]
        blobs.append((sha, len(data)))
    services = _services(s3_server)
    outcomes: list[tuple[str, int, str]] = []

    def commit_all() -> None:
        with httpx.Client(timeout=60) as client:
            for i, (sha, size) in enumerate(blobs):
                body = ('{"key":"header","value":{"summary":"race %d"}}\n' % i
                        + f'{{"key":"lfsFile","value":{{"path":"f{i}.bin","algo":"sha256","oid":"{sha}",'
                          f'"size":{size}}}}}\n')
                answer = client.post(f"{s3_server.url}/api/models/{repo_id}/commit/main", content=body,
                                     headers={**_auth(token), "Content-Type": "application/x-ndjson"})
                outcomes.append((sha, answer.status_code, answer.text))

    try:
        committer = threading.Thread(target=commit_all)
        committer.start()
        runs = 0
        while committer.is_alive() and runs < 200:
            collect(services, grace_seconds=0)
            runs += 1
        committer.join(timeout=120)
        assert not committer.is_alive()
        files = set(api.list_repo_files(repo_id))
        for i, (sha, status, text) in enumerate(outcomes):
            if status == 200:
                assert f"f{i}.bin" in files
                assert services.store.exists(sha), f"a committed blob was collected: {sha}"
            else:
                assert status in (400, 412, 409), text
                assert "upload" in text.lower()
        # Whatever the last commit names downloads.
        for path in files:
            if path.startswith("f"):
                assert httpx.get(f"{s3_server.url}/{repo_id}/resolve/main/{path}", headers=_auth(token),
                                 follow_redirects=True).status_code == 200
        assert runs > 0
    finally:
        services.close()


def test_gc_command_is_for_server_admins(s3_server) -> None:  # type: ignore[no-untyped-def]
    import json
    import os
    import subprocess
    import sys

    _, writer = s3_server.user()
    refused = httpx.post(f"{s3_server.url}/api/admin/gc", headers=_auth(writer))
    assert refused.status_code == 403
    _, admin = s3_server.user(admin=True)
    repo_id, token, _, _ = _publish(s3_server)
    leftover = b"never committed, for the command " + uuid.uuid4().bytes
    sha = httpx.post(f"{s3_server.url}/api/models/{repo_id}/blobs", params={"size": len(leftover)},
                     content=leftover, headers=_auth(token)).json()["oid"]

    def gc(*args: str, token: str = admin) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "releasehub", "gc", *args], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "HF_ENDPOINT": s3_server.url, "HF_TOKEN": token})

    dry = gc("--dry-run", "--grace-hours", "0", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["dry_run"] is True and sha in json.loads(dry.stdout)["removed"]
    assert s3_server.blob_store().exists(sha)
    done = gc("--grace-hours", "0")
    assert done.returncode == 0, done.stderr
    assert "unreferenced blobs" in done.stdout and not s3_server.blob_store().exists(sha)
    denied = gc("--dry-run", token=writer)
    assert denied.returncode == 1 and "Traceback" not in denied.stderr
