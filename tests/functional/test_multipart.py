"""Multipart LFS uploads: the batch API offers parts (with `chunk_size`) above a threshold and the
unchanged client uploads them one by one, then completes. A server with small thresholds makes
a 2.3 MB file take five parts."""

from __future__ import annotations

import hashlib
import math
import os
import random
from pathlib import Path

import httpx
import pytest
from conftest import start_server, stop_server
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub import lfs as hf_lfs

THRESHOLD = 1024 * 1024
CHUNK = 512 * 1024
LFS_HEADERS = {"Accept": "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json"}


@pytest.fixture(scope="module")
def mp_server(tmp_path_factory: pytest.TempPathFactory):
    proc = start_server(tmp_path_factory.mktemp("multipart"), "", extra_env={
        "RELEASEHUB_MULTIPART_THRESHOLD_BYTES": str(THRESHOLD),
        "RELEASEHUB_MULTIPART_CHUNK_BYTES": str(CHUNK),
    })
    yield proc
    stop_server(proc)


@pytest.fixture
def mp_repo(mp_server):  # type: ignore[no-untyped-def]
    user, token = mp_server.user()
    api = HfApi(endpoint=mp_server.url, token=token)
    repo_id = f"{user}/multipart"
    api.create_repo(repo_id)
    return api, repo_id, token


def _batch(server, repo_id: str, token: str, oid: str, size: int) -> dict:
    response = httpx.post(
        f"{server.url}/{repo_id}.git/info/lfs/objects/batch",
        json={"operation": "upload", "transfers": ["basic", "multipart"], "hash_algo": "sha256",
              "objects": [{"oid": oid, "size": size}]},
        headers={**LFS_HEADERS, "Authorization": f"Bearer {token}"}, timeout=30,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_client_multipart_upload_round_trip(mp_server, mp_repo, tmp_path: Path, monkeypatch) -> None:
    api, repo_id, token = mp_repo
    content = random.Random(1).randbytes(2_300_000)
    path = tmp_path / "big.bin"
    path.write_bytes(content)
    oid = hashlib.sha256(content).hexdigest()

    # The batch answer carries chunk_size and one link per part.
    batch = _batch(mp_server, repo_id, token, oid, len(content))
    assert batch["transfer"] == "multipart"
    header = batch["objects"][0]["actions"]["upload"]["header"]
    assert header["chunk_size"] == str(CHUNK)
    assert sorted(int(k) for k in header if k.isdigit()) == list(range(1, math.ceil(len(content) / CHUNK) + 1))

    calls: list[str] = []
    real_single, real_multi = hf_lfs._upload_single_part, hf_lfs._upload_multi_part
    monkeypatch.setattr(hf_lfs, "_upload_single_part", lambda **kw: (calls.append("single"), real_single(**kw)))
    monkeypatch.setattr(hf_lfs, "_upload_multi_part",
                        lambda **kw: (calls.append(f"multi:{kw['chunk_size']}"), real_multi(**kw)))
    info = api.upload_file(path_or_fileobj=str(path), path_in_repo="big.bin", repo_id=repo_id)
    assert calls == [f"multi:{CHUNK}"]

    downloaded = hf_hub_download(repo_id, "big.bin", endpoint=mp_server.url, token=token,
                                 cache_dir=str(tmp_path / "cache"))
    assert Path(downloaded).read_bytes() == content
    entry = api.get_paths_info(repo_id, ["big.bin"])[0]
    assert entry.lfs is not None and entry.lfs.sha256 == oid and entry.size == len(content)
    assert api.model_info(repo_id).sha == info.oid
    # The parts were assembled in tmp/ and nothing of them is left there.
    assert not any(p.name.startswith("multipart-") for p in (mp_server.data_dir / "tmp").iterdir())
    # Now stored: the batch API asks for nothing more.
    assert "actions" not in _batch(mp_server, repo_id, token, oid, len(content))["objects"][0]


def test_small_files_stay_single_part(mp_server, mp_repo, monkeypatch) -> None:
    api, repo_id, _ = mp_repo
    calls: list[str] = []
    real_single = hf_lfs._upload_single_part
    monkeypatch.setattr(hf_lfs, "_upload_single_part", lambda **kw: (calls.append("single"), real_single(**kw)))
    content = os.urandom(THRESHOLD - 1)
    api.upload_file(path_or_fileobj=content, path_in_repo="small.bin", repo_id=repo_id)
    assert calls == ["single"]
    assert httpx.get(f"{mp_server.url}/{repo_id}/resolve/main/small.bin", timeout=30).content == content


def test_multipart_protocol_errors(mp_server, mp_repo) -> None:
    """Parts out of range, incomplete or mismatching completions, and corrupt parts are refused;
    the corrupt assembly is not published."""
    _, repo_id, token = mp_repo
    content = os.urandom(2 * CHUNK + 100)  # over the threshold: three parts
    oid = hashlib.sha256(content).hexdigest()
    action = _batch(mp_server, repo_id, token, oid, len(content))["objects"][0]["actions"]["upload"]
    links = {int(k): v for k, v in action["header"].items() if k.isdigit()}
    complete = action["href"]
    assert sorted(links) == [1, 2, 3]
    pieces = [content[i * CHUNK : (i + 1) * CHUNK] for i in range(3)]

    out_of_range = links[3].replace("/parts/3?", "/parts/4?")
    assert httpx.put(out_of_range, content=b"x", timeout=30).status_code in (400, 403)
    assert httpx.put(links[1], content=pieces[1][:10], timeout=30).status_code == 400  # too short
    assert httpx.put(links[1], content=pieces[0] + b"extra", timeout=30).status_code == 400  # too long

    etags = {}
    for number in (1, 2):
        response = httpx.put(links[number], content=pieces[number - 1], timeout=30)
        assert response.status_code == 200, response.text
        etags[number] = response.headers["ETag"]
    # Part 3 missing.
    missing = httpx.post(complete, json={"oid": oid, "parts": [
        {"partNumber": 1, "etag": etags[1]}, {"partNumber": 2, "etag": etags[2]}]}, timeout=30)
    assert missing.status_code == 400
    listed_missing = httpx.post(complete, json={"oid": oid, "parts": [
        {"partNumber": n, "etag": etags.get(n, '"x"')} for n in (1, 2, 3)]}, timeout=30)
    assert listed_missing.status_code == 404
    # Part 3 uploaded with corrupt bytes of the right length: etags match what was sent, the
    # assembled object does not hash to the oid.
    corrupt = bytes(b ^ 1 for b in pieces[2])
    response = httpx.put(links[3], content=corrupt, timeout=30)
    assert response.status_code == 200
    etags[3] = response.headers["ETag"]
    wrong_etag = httpx.post(complete, json={"oid": oid, "parts": [
        {"partNumber": 1, "etag": etags[2]}, {"partNumber": 2, "etag": etags[2]},
        {"partNumber": 3, "etag": etags[3]}]}, timeout=30)
    assert wrong_etag.status_code == 400
    mismatch = httpx.post(complete, json={"oid": oid, "parts": [
        {"partNumber": n, "etag": etags[n]} for n in (1, 2, 3)]}, timeout=30)
    assert mismatch.status_code == 400, mismatch.text
    assert mismatch.headers["X-Error-Code"] == "ChecksumMismatch"
    blob = mp_server.data_dir / "blobs" / oid[:2] / oid[2:4] / oid
    assert not blob.exists()
    assert "upload" in _batch(mp_server, repo_id, token, oid, len(content))["objects"][0]["actions"]

    # Starting again with the right bytes works.
    for number in (1, 2, 3):
        response = httpx.put(links[number], content=pieces[number - 1], timeout=30)
        assert response.status_code == 200
        etags[number] = response.headers["ETag"]
    done = httpx.post(complete, json={"oid": oid, "parts": [
        {"partNumber": n, "etag": etags[n]} for n in (1, 2, 3)]}, timeout=30)
    assert done.status_code == 200, done.text
    assert blob.read_bytes() == content
