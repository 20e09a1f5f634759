"""Crash safety with a real server process, killed with SIGKILL (no clean-up code runs):

(a) in the middle of a large streaming LFS upload: after a restart the repo is exactly as before,
    no partial blob is published (a leftover temporary file is swept at start-up), and the same
    file uploads fine;
(b) at a random moment during a stream of commits: after a restart `main` is a commit whose files
    are all present and complete, no acknowledged commit is lost, and the history is one
    consistent chain.

Both run on SQLite and on PostgreSQL, each with its own server and data dir.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest
from conftest import ServerProcess, start_server, stop_server
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub import lfs as hf_lfs

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
LFS_HEADERS = {"Accept": "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json"}


class Crashable:
    """A server on one data dir and database that can be killed and started again."""

    def __init__(self, data_dir: Path, database_url: str) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.proc: ServerProcess | None = None

    def start(self) -> ServerProcess:
        assert self.proc is None
        self.proc = start_server(self.data_dir, self.database_url)
        return self.proc

    def kill(self) -> None:
        assert self.proc is not None
        stop_server(self.proc, signal.SIGKILL)
        assert self.proc.process.returncode == -signal.SIGKILL
        self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)
            self.proc = None


@pytest.fixture(params=["sqlite", "postgres"])
def crashable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Crashable]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    data_dir = tmp_path / "data"
    target = Crashable(data_dir, database_url)
    yield target
    target.close()
    shutil.rmtree(data_dir, ignore_errors=True)  # large blobs: do not keep them around


def _blob(data_dir: Path, sha: str) -> Path:
    return data_dir / "blobs" / sha[:2] / sha[2:4] / sha


def _assert_blob_store_sound(data_dir: Path) -> None:
    """Every published blob holds exactly the bytes its name promises."""
    for path in (data_dir / "blobs").rglob("*"):
        if path.is_file():
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                while chunk := handle.read(8 * MiB):
                    digest.update(chunk)
            assert digest.hexdigest() == path.name, f"corrupt blob {path}"


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# ---------------------------------------------------------------- (a) kill during an upload


BIG_SIZE = 200 * MiB
SENT_BEFORE_KILL = 48 * MiB


def _big_chunks() -> Iterator[bytes]:
    block = random.Random(7).randbytes(MiB)
    for i in range(BIG_SIZE // MiB):
        yield i.to_bytes(8, "big") + block[8:]


def test_kill_during_large_upload(crashable: Crashable, tmp_path: Path) -> None:
    server = crashable.start()
    user, token = server.user()
    api = HfApi(endpoint=server.url, token=token)
    repo_id = f"{user}/crash-upload"
    api.create_repo(repo_id)
    before = api.upload_file(path_or_fileobj=b"version 1\n", path_in_repo="notes.txt", repo_id=repo_id)
    files_before = sorted(api.list_repo_files(repo_id))
    commits_before = [c.commit_id for c in api.list_repo_commits(repo_id)]

    digest = hashlib.sha256()
    big_file = tmp_path / "big.bin"
    with open(big_file, "wb") as out:
        for chunk in _big_chunks():
            digest.update(chunk)
            out.write(chunk)
    oid = digest.hexdigest()
    batch = httpx.post(
        f"{server.url}/{repo_id}.git/info/lfs/objects/batch",
        json={"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": BIG_SIZE}]},
        headers={**LFS_HEADERS, "Authorization": f"Bearer {token}"}, timeout=30,
    )
    href = batch.json()["objects"][0]["actions"]["upload"]["href"]

    # Stream the body; after SENT_BEFORE_KILL bytes, hold the connection open until the kill.
    halfway, killed = threading.Event(), threading.Event()
    outcome: list[object] = []

    def body() -> Iterator[bytes]:
        sent = 0
        for chunk in _big_chunks():
            yield chunk
            sent += len(chunk)
            if sent >= SENT_BEFORE_KILL:
                halfway.set()
                killed.wait(60)
                return

    def upload() -> None:
        try:
            outcome.append(httpx.put(href, content=body(), timeout=60).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=upload, daemon=True)
    thread.start()
    assert halfway.wait(60), "the upload never got going"
    tmp_dir = crashable.data_dir / "tmp"

    def partial_on_disk() -> bool:
        return any(p.stat().st_size >= 16 * MiB for p in tmp_dir.iterdir() if p.is_file())

    _wait_for(partial_on_disk, 30, "the server to write the partial upload to tmp/")
    crashable.kill()
    killed.set()
    thread.join(60)
    assert not thread.is_alive()
    assert outcome and not outcome[0] == 200, outcome

    # Nothing was published: only a temporary file is left, outside blobs/.
    assert not _blob(crashable.data_dir, oid).exists()
    _assert_blob_store_sound(crashable.data_dir)
    leftovers = [p for p in tmp_dir.iterdir() if p.is_file()]
    assert leftovers, "expected the interrupted upload's temporary file"
    # Start-up sweeps temporary files older than a day; age them so this restart sweeps them.
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in leftovers:
        os.utime(path, (two_days_ago, two_days_ago))

    server = crashable.start()
    assert not any(p.exists() for p in leftovers), "the start-up sweep left temporary files behind"
    api = HfApi(endpoint=server.url, token=token)
    assert api.model_info(repo_id).sha == before.oid
    assert sorted(api.list_repo_files(repo_id)) == files_before
    assert [c.commit_id for c in api.list_repo_commits(repo_id)] == commits_before
    assert httpx.get(f"{server.url}/{repo_id}/resolve/main/notes.txt", timeout=30).content == b"version 1\n"

    # The same file uploads from scratch and reads back whole.
    after = api.upload_file(path_or_fileobj=str(big_file), path_in_repo="big.bin", repo_id=repo_id)
    assert _blob(crashable.data_dir, oid).stat().st_size == BIG_SIZE
    got = hashlib.sha256()
    with httpx.stream("GET", f"{server.url}/{repo_id}/resolve/{after.oid}/big.bin", timeout=60) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes(8 * MiB):
            got.update(chunk)
    assert got.hexdigest() == oid
    big_file.unlink()


# ---------------------------------------------------------------- (b) kill during commits


MAX_COMMITS = 400
LOOP_SECONDS = 40.0


def test_kill_during_commits(crashable: Crashable, monkeypatch: pytest.MonkeyPatch) -> None:
    # After the kill the client must not retry its LFS PUTs (by default it retries for ~20 s, and
    # could even reach the restarted server if it got the same port).
    monkeypatch.setattr(hf_lfs, "http_backoff", functools.partial(hf_lfs.http_backoff, max_retries=0))
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    server = crashable.start()
    user, token = server.user()
    api = HfApi(endpoint=server.url, token=token)
    repo_id = f"{user}/crash-commits"
    api.create_repo(repo_id)
    gitattributes = httpx.get(f"{server.url}/{repo_id}/resolve/main/.gitattributes", timeout=30).content

    # What `main` must hold after each commit, recorded before the commit is sent.
    expected: dict[str, dict[str, bytes]] = {}
    acknowledged: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def commit_loop() -> None:
        state: dict[str, bytes] = {".gitattributes": gitattributes}
        data_rng = random.Random(seed + 1)
        deadline = time.monotonic() + LOOP_SECONDS
        for i in range(MAX_COMMITS):
            if stop.is_set() or time.monotonic() > deadline:
                return
            title = f"commit {i}"
            ops: list[CommitOperationAdd | CommitOperationDelete] = []
            new = dict(state)
            adds = {
                "counter.txt": f"{i}\n".encode(),
                f"steps/step-{i}.txt": data_rng.randbytes(data_rng.randint(0, 4000)).hex().encode(),
                "model.safetensors": data_rng.randbytes(data_rng.randint(1, 256 * 1024)),
            }
            if i % 3 == 0:
                adds[f"shards/shard-{i}.bin"] = data_rng.randbytes(data_rng.randint(1000, 64 * 1024))
            for path, content in adds.items():
                ops.append(CommitOperationAdd(path, content))
                new[path] = content
            if i >= 4 and i % 4 == 0:
                old = f"steps/step-{i - 4}.txt"
                ops.append(CommitOperationDelete(old))
                del new[old]
            expected[title] = new
            try:
                info = api.create_commit(repo_id, ops, commit_message=title)
            except BaseException as exc:  # the kill: connection refused or reset
                errors.append(exc)
                return
            acknowledged.append((title, info.oid))
            state = new

    thread = threading.Thread(target=commit_loop, daemon=True)
    thread.start()
    _wait_for(lambda: len(acknowledged) >= 3 or not thread.is_alive(), 60, "the first commits")
    assert len(acknowledged) >= 3, errors
    time.sleep(rng.uniform(0.0, 2.0))
    crashable.kill()
    stop.set()
    thread.join(60)
    assert not thread.is_alive()
    context = f"seed={seed}, acknowledged={len(acknowledged)}, attempted={len(expected)}, errors={errors!r}"

    _assert_blob_store_sound(crashable.data_dir)
    server = crashable.start()
    api = HfApi(endpoint=server.url, token=token)
    head = api.model_info(repo_id).sha
    history = api.list_repo_commits(repo_id)
    titles = [c.title for c in history]
    assert history[0].commit_id == head, context

    # main is the last acknowledged commit, or the one in flight when the server died.
    last_ack_title, last_ack_oid = acknowledged[-1]
    in_flight = f"commit {len(acknowledged)}"
    assert titles[0] in (last_ack_title, in_flight), (titles[:3], context)
    if titles[0] == last_ack_title:
        assert head == last_ack_oid, context

    # One chain: commit N, N-1, ..., 0, then the repo's initial commit; nothing lost, nothing twice.
    top = int(titles[0].split()[1])
    assert titles == [f"commit {n}" for n in range(top, -1, -1)] + ["initial commit"], context
    assert len({c.commit_id for c in history}) == len(history)
    by_title = {c.title: c.commit_id for c in history}
    for title, oid in acknowledged:
        assert by_title[title] == oid, (title, context)

    # Every file of the head is there, complete, with the content of that commit.
    want = expected[titles[0]]
    assert sorted(api.list_repo_files(repo_id, revision=head)) == sorted(want), context
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for path, content in want.items():
            response = client.get(f"/{repo_id}/resolve/{head}/{path}")
            assert response.status_code == 200, (path, context)
            assert response.content == content, (path, context)
        # An older acknowledged commit still reads back whole too.
        old_title, old_oid = acknowledged[len(acknowledged) // 2]
        for path, content in expected[old_title].items():
            assert client.get(f"/{repo_id}/resolve/{old_oid}/{path}").content == content, (path, context)

    # The repo takes new commits on top of the recovered head.
    after = api.create_commit(repo_id, [CommitOperationAdd("after-restart.txt", b"ok")],
                              commit_message="after restart", parent_commit=head)
    assert [c.commit_id for c in api.list_repo_commits(repo_id)][:2] == [after.oid, head]


# ---------------------------------------------------------------- (c) kill during a Xet xorb upload


def test_kill_during_a_xet_xorb_upload(crashable: Crashable, tmp_path: Path) -> None:
    """Half a xorb body is on the wire (and partly spooled) when the server is killed: after a
    restart the repo is as before, no xorb, blob, claim or Xet file exists for it, the spool is
    swept, and the real client then uploads the same file through Xet."""
    from sqlalchemy import func, select
    from test_xet import cas_headers, run_python

    from releasehub.repos import service as repos
    from releasehub.repos.models import Blob, UploadClaim
    from releasehub.xet.hashing import chunk_hash, hash_hex, xorb_hash
    from releasehub.xet.models import XetFile, XetXorb, XetXorbClaim
    from releasehub.xet.xorb import LZ4, build_xorb

    server = crashable.start()
    user, token = server.user()
    api = HfApi(endpoint=server.url, token=token)
    repo_id = f"{user}/crash-xet"
    api.create_repo(repo_id)
    before = api.upload_file(path_or_fileobj=b"version 1\n", path_in_repo="notes.txt", repo_id=repo_id)
    commits_before = [c.commit_id for c in api.list_repo_commits(repo_id)]

    rng = random.Random(13)
    chunks = [rng.randbytes(64 * 1024) for _ in range(160)]  # about 10 MiB, incompressible
    xorb = build_xorb(chunks, LZ4)
    name = hash_hex(xorb_hash([(chunk_hash(c), len(c)) for c in chunks]))
    content = b"".join(chunks)
    sha = hashlib.sha256(content).hexdigest()
    headers = cas_headers(server, repo_id, token)  # type: ignore[arg-type]
    half = len(xorb) // 2
    halfway, killed = threading.Event(), threading.Event()
    outcome: list[object] = []

    def body() -> Iterator[bytes]:
        for start in range(0, half, 256 * 1024):
            yield xorb[start:min(start + 256 * 1024, half)]
        halfway.set()
        killed.wait(60)

    def upload() -> None:
        try:
            outcome.append(httpx.post(f"{server.url}/v1/xorbs/default/{name}", content=body(), headers=headers,
                                      timeout=60).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=upload, daemon=True)
    thread.start()
    assert halfway.wait(60), "the xorb upload never got going"
    spool = crashable.data_dir / "xet" / "tmp"
    _wait_for(lambda: any(p.stat().st_size >= 4 * MiB for p in spool.iterdir() if p.is_file()), 30,
              "the server to spool part of the xorb")
    crashable.kill()
    killed.set()
    thread.join(60)
    assert outcome and outcome[0] != 200, outcome
    leftovers = [p for p in spool.iterdir() if p.is_file()]
    assert leftovers, "expected the interrupted xorb's spooled body"
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in leftovers:
        os.utime(path, (two_days_ago, two_days_ago))

    server = crashable.start()
    assert not any(p.exists() for p in leftovers), "the start-up sweep left spooled xorb bodies behind"
    assert not (crashable.data_dir / "xet" / "xorbs" / name[:2] / name).exists()
    with server.db.session() as session:
        repo = repos.find_repo(session, user, "crash-xet")
        assert repo is not None
        assert session.get(XetXorb, name) is None
        assert session.scalar(select(func.count()).select_from(XetXorbClaim)
                              .where(XetXorbClaim.repo_id == repo.id)) == 0
        assert session.scalar(select(func.count()).select_from(XetFile).where(XetFile.repo_id == repo.id)) == 0
        assert session.scalar(select(func.count()).select_from(UploadClaim)
                              .where(UploadClaim.repo_id == repo.id)) == 0
        assert session.get(Blob, sha) is None
    api = HfApi(endpoint=server.url, token=token)
    assert api.model_info(repo_id).sha == before.oid
    assert [c.commit_id for c in api.list_repo_commits(repo_id)] == commits_before
    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", "notes.txt"]

    # The real client (Xet) uploads the same file afterwards, and it reads back whole.
    source = tmp_path / "weights.bin"
    source.write_bytes(content)
    run_python(server, token, tmp_path / "hf-home", """
        from huggingface_hub import HfApi
        HfApi().upload_file(path_or_fileobj=sys.argv[1], path_in_repo="weights.bin", repo_id=sys.argv[2])
    """, str(source), repo_id)
    with server.db.session() as session:
        assert session.scalar(select(func.count()).select_from(XetFile).where(XetFile.sha256 == sha)) == 1
    got = httpx.get(f"{server.url}/{repo_id}/resolve/main/weights.bin", timeout=60)
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == sha
    _assert_blob_store_sound(crashable.data_dir)
