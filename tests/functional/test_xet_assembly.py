"""Xet uploads assembled while their xorbs arrive, on a running server (SQLite and PostgreSQL).

An upload session (`X-Xet-Session-Id`) whose xorbs came in the file's order leaves the shard only
the check and the publication; one whose xorbs came in another order continues from the common
prefix; what is accepted is exactly what a reconstruction accepts (a wrong sha256 is refused and
leaves nothing visible; a refused xorb in the session changes nothing). The server's log says
how many of a file's terms were assembled, which is how these tests see which path was taken.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from pathlib import Path

import httpx
from conftest import ServerProcess
from test_xet import cas_headers, nothing_visible, resolve_bytes, run_python, sha256_of

from releasehub.repos.models import Blob
from releasehub.xet.hashing import chunk_hash, file_hash, hash_from_hex, hash_hex, verification_hash, xorb_hash
from releasehub.xet.shard import FileInfo, Term, build_shard
from releasehub.xet.xorb import LZ4, NONE, build_xorb


class Part:
    """One xorb of a hand-built file."""

    def __init__(self, rng: random.Random, chunks: int, scheme: int) -> None:
        self.chunks = [rng.randbytes(rng.randrange(2_000, 40_000)) for _ in range(chunks)]
        self.pairs = [(chunk_hash(c), len(c)) for c in self.chunks]
        self.body = build_xorb(self.chunks, scheme)
        self.hash = hash_hex(xorb_hash(self.pairs))


class File:
    """A file of several whole xorbs, and its shard."""

    def __init__(self, seed: int, parts: int = 3) -> None:
        rng = random.Random(seed)
        self.parts = [Part(rng, 2 + n, LZ4 if n % 2 else NONE) for n in range(parts)]
        self.content = b"".join(c for p in self.parts for c in p.chunks)
        self.sha256 = hashlib.sha256(self.content).hexdigest()

    def shard(self, sha256: str | None = None) -> bytes:
        terms = [Term(hash_from_hex(p.hash), sum(s for _, s in p.pairs), 0, len(p.pairs)) for p in self.parts]
        checks = [verification_hash([h for h, _ in p.pairs]) for p in self.parts]
        pairs = [pair for p in self.parts for pair in p.pairs]
        return build_shard([FileInfo(file_hash(pairs), terms, checks, hash_from_hex(sha256 or self.sha256))])


def send(server: ServerProcess, headers: dict[str, str], session: str, file: File, order: list[int]) -> None:
    for number in order:
        part = file.parts[number]
        answer = httpx.post(f"{server.url}/v1/xorbs/default/{part.hash}", content=part.body,
                            headers={**headers, "X-Xet-Session-Id": session}, timeout=60)
        assert answer.status_code == 200, answer.text


def shard(server: ServerProcess, headers: dict[str, str], session: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/shards", content=body, headers={**headers, "X-Xet-Session-Id": session},
                      timeout=60)


def assembled(server: ServerProcess, file: File, log_from: int) -> str | None:
    """The log's "N of its M terms" for this file's Xet hash since `log_from`, or None."""
    pairs = [pair for p in file.parts for pair in p.pairs]
    marker = f"xet file {hash_hex(file_hash(pairs))}: "
    lines = [line for line in server.log()[log_from:].splitlines() if marker in line]
    return lines[-1].split(marker)[1].split(" were")[0] if lines else None


def commit(server: ServerProcess, repo_id: str, token: str, path: str, file: File) -> None:
    body = ('{"key":"header","value":{"summary":"xet"}}\n'
            f'{{"key":"lfsFile","value":{{"path":"{path}","algo":"sha256","oid":"{file.sha256}",'
            f'"size":{len(file.content)}}}}}\n')
    done = httpx.post(f"{server.url}/api/models/{repo_id}/commit/main", content=body,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
    assert done.status_code == 200, done.text


def test_xorbs_sent_in_the_files_order_are_the_blob_when_the_shard_comes(
        server: ServerProcess, owner: tuple[str, str], repo_id: str) -> None:
    headers = cas_headers(server, repo_id, owner[1])
    file = File(1)
    start = len(server.log())
    send(server, headers, "in-order", file, [0, 1, 2])
    answer = shard(server, headers, "in-order", file.shard())
    assert answer.status_code == 200 and answer.json()["result"] == 1, answer.text
    assert assembled(server, file, start) == "3 of its 3 terms"
    commit(server, repo_id, owner[1], "model.bin", file)
    assert resolve_bytes(server, repo_id, "model.bin", owner[1]) == file.content


def test_xorbs_sent_out_of_order_continue_from_the_common_prefix(
        server: ServerProcess, owner: tuple[str, str], repo_id: str) -> None:
    headers = cas_headers(server, repo_id, owner[1])
    file = File(2, parts=4)
    start = len(server.log())
    send(server, headers, "swapped", file, [0, 1, 3, 2])  # the last two began in the other order
    assert shard(server, headers, "swapped", file.shard()).status_code == 200
    assert assembled(server, file, start) == "2 of its 4 terms"
    commit(server, repo_id, owner[1], "model.bin", file)
    assert resolve_bytes(server, repo_id, "model.bin", owner[1]) == file.content
    # A file whose first xorb came later is reconstructed from its xorbs: the same bytes.
    other = File(3)
    start = len(server.log())
    send(server, headers, "backwards", other, [2, 1, 0])
    assert shard(server, headers, "backwards", other.shard()).status_code == 200
    assert assembled(server, other, start) is None
    commit(server, repo_id, owner[1], "other.bin", other)
    assert resolve_bytes(server, repo_id, "other.bin", owner[1]) == other.content


def test_an_assembled_file_is_checked_like_a_reconstructed_one(
        server: ServerProcess, owner: tuple[str, str], repo_id: str) -> None:
    headers = cas_headers(server, repo_id, owner[1])
    file = File(4)
    send(server, headers, "lying", file, [0, 1, 2])
    wrong = shard(server, headers, "lying", file.shard(sha256="ab" * 32))  # not the content's sha256
    assert wrong.status_code == 400, wrong.text
    nothing_visible(server, repo_id, file.sha256, "ab" * 32)
    # A refused xorb in a session leaves a gap: the session's file is then reconstructed, and right.
    hostile = File(5)
    start = len(server.log())
    send(server, headers, "gap", hostile, [0])
    broken = bytearray(hostile.parts[1].body)
    broken[10:30] = b"\x00" * 20
    refused = httpx.post(f"{server.url}/v1/xorbs/default/{hostile.parts[1].hash}", content=bytes(broken),
                         headers={**headers, "X-Xet-Session-Id": "gap"})
    assert refused.status_code == 400
    send(server, headers, "gap", hostile, [1, 2])
    assert shard(server, headers, "gap", hostile.shard()).status_code == 200
    assert assembled(server, hostile, start) is None
    commit(server, repo_id, owner[1], "model.bin", hostile)
    assert resolve_bytes(server, repo_id, "model.bin", owner[1]) == hostile.content
    # Another user's session of the same name is another assembly: their xorbs are not this file's.
    stranger, stranger_token = server.user()
    stranger_repo = f"{stranger}/a-{uuid.uuid4().hex[:6]}"
    httpx.post(f"{server.url}/api/repos/create", json={"name": stranger_repo.split("/")[1], "type": "model"},
               headers={"Authorization": f"Bearer {stranger_token}"}).raise_for_status()
    theirs = File(6)
    send(server, cas_headers(server, stranger_repo, stranger_token), "shared-name", theirs, [0, 1, 2])
    refused_shard = shard(server, headers, "shared-name", theirs.shard())  # never sent by this user here
    assert refused_shard.status_code == 400
    with server.db.session() as session:
        assert session.get(Blob, theirs.sha256) is None  # not even reconstructed


def test_the_real_client_sends_a_session_and_its_file_is_assembled(
        server: ServerProcess, owner: tuple[str, str], repo_id: str, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(random.Random(9).randbytes(3 * 1024 * 1024))
    start = len(server.log())
    run_python(server, owner[1], tmp_path / "hf-home", """
        from huggingface_hub import HfApi
        HfApi().upload_file(path_or_fileobj=sys.argv[1], path_in_repo="weights.bin", repo_id=sys.argv[2])
    """, str(source), repo_id)
    lines = [line for line in server.log()[start:].splitlines() if "were assembled while the xorbs arrived" in line]
    assert lines and " 1 of its 1 terms" in lines[-1], server.log()[start:][-2000:]
    assert hashlib.sha256(resolve_bytes(server, repo_id, "weights.bin", owner[1])).hexdigest() == sha256_of(source)
