"""Xet downloads: v2 reconstructions and their multi-range xorb links, the v1 fallback, Range and
416, and the audit event of each reconstruction answer.

The file here is built by hand so that its terms leave a gap in their xorb: chunks 0, 2 and 3 of
a four-chunk xorb (and chunk 0 again), as deduplication across files produces. Chunk 1 stands for
another file's bytes: no link of this file may serve it. The real client (a subprocess, Xet
enabled) then downloads it, with its default single-range fetches and with multi-range fetching
(multipart/byteranges) turned on.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import ServerProcess
from sqlalchemy import select
from test_xet import cas_headers, run_python, served, served_by_version

from releasehub.auditlog.models import AuditEvent
from releasehub.xet.hashing import chunk_hash, file_hash, hash_from_hex, hash_hex, verification_hash, xorb_hash
from releasehub.xet.shard import FileInfo, Term, build_shard
from releasehub.xet.xorb import LZ4, build_xorb, iter_chunks

SIZES = (70_000, 9_000, 50_000, 30_000)  # chunk 1 is not part of the file
LAYOUT = ((0, 1), (2, 4), (0, 1))  # the file's terms: chunk ranges [start, end) of the one xorb


@dataclass
class GappedFile:
    repo_id: str
    path: str
    xorb_hash: str
    xorb: bytes
    offsets: list[int]  # where each chunk starts in the xorb
    content: bytes
    file_id: str
    commit: str


def publish(server: ServerProcess, owner: tuple[str, str], repo_id: str, seed: int = 5) -> GappedFile:
    rng = random.Random(seed)
    chunks = [rng.randbytes(n) for n in SIZES]
    pairs = [(chunk_hash(c), len(c)) for c in chunks]
    xorb = build_xorb(chunks, LZ4)
    xorb_id = hash_hex(xorb_hash(pairs))
    offsets = [offset for offset, _ in iter_chunks(io.BytesIO(xorb))]
    used = [i for start, end in LAYOUT for i in range(start, end)]
    content = b"".join(chunks[i] for i in used)
    terms = [Term(hash_from_hex(xorb_id), sum(SIZES[start:end]), start, end) for start, end in LAYOUT]
    verification = [verification_hash([pairs[i][0] for i in range(start, end)]) for start, end in LAYOUT]
    info = FileInfo(file_hash([pairs[i] for i in used]), terms, verification,
                    hash_from_hex(hashlib.sha256(content).hexdigest()))
    write = cas_headers(server, repo_id, owner[1])
    assert httpx.post(f"{server.url}/v1/xorbs/default/{xorb_id}", content=xorb, headers=write).status_code == 200
    answer = httpx.post(f"{server.url}/v1/shards", content=build_shard([info]), headers=write)
    assert answer.status_code == 200, answer.text
    sha = hashlib.sha256(content).hexdigest()
    path = "weights/gapped.bin"
    commit = (
        '{"key":"header","value":{"summary":"a gapped xet file"}}\n'
        f'{{"key":"lfsFile","value":{{"path":"{path}","algo":"sha256","oid":"{sha}","size":{len(content)}}}}}\n'
    )
    done = httpx.post(f"{server.url}/api/models/{repo_id}/commit/main", content=commit,
                      headers={"Authorization": f"Bearer {owner[1]}", "Content-Type": "application/x-ndjson"})
    assert done.status_code == 200, done.text
    return GappedFile(repo_id, path, xorb_id, xorb, offsets, content, hash_hex(info.file_hash),
                      done.json()["commitOid"])


def chunk_bytes(f: GappedFile, start: int, end: int) -> tuple[int, int]:
    """The inclusive byte range of chunks [start, end) in the xorb."""
    last = f.offsets[end] - 1 if end < len(f.offsets) else len(f.xorb) - 1
    return f.offsets[start], last


def parse_multipart(answer: httpx.Response) -> list[tuple[str, bytes]]:
    """(Content-Range, body) of each part of a multipart/byteranges answer."""
    match = re.match(r"multipart/byteranges; boundary=(\S+)", answer.headers["content-type"])
    assert match, answer.headers["content-type"]
    boundary = match.group(1).encode()
    body = answer.content
    assert body.endswith(b"--" + boundary + b"--\r\n")
    parts = []
    for raw in body.split(b"--" + boundary)[1:-1]:
        head, _, data = raw.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append((headers["Content-Range"], data.removesuffix(b"\r\n")))
    return parts


def audit_events(server: ServerProcess, repo_id: str, wanted: int, timeout: float = 10) -> list[AuditEvent]:
    """The repo's `file.downloaded` events, once at least `wanted` are written (the recorder batches)."""
    deadline = time.monotonic() + timeout
    while True:
        with server.db.session() as session:
            events = list(session.scalars(select(AuditEvent).where(
                AuditEvent.repo == repo_id, AuditEvent.action == "file.downloaded").order_by(AuditEvent.seq)))
            session.expunge_all()
        if len(events) >= wanted or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def test_v2_names_one_link_per_xorb_over_the_files_chunks_only(server: ServerProcess, owner: tuple[str, str],
                                                                repo_id: str) -> None:
    f = publish(server, owner, repo_id)
    read = cas_headers(server, repo_id, owner[1], "read")
    answer = httpx.get(f"{server.url}/v2/reconstructions/{f.file_id}", headers=read)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["offset_into_first_range"] == 0 and "fetch_info" not in body
    assert body["terms"] == [{"hash": f.xorb_hash, "unpacked_length": sum(SIZES[a:b]), "range": {"start": a, "end": b}}
                             for a, b in LAYOUT]
    (entry,) = body["xorbs"][f.xorb_hash]
    first, rest = chunk_bytes(f, 0, 1), chunk_bytes(f, 2, 4)
    assert entry["ranges"] == [{"chunks": {"start": 0, "end": 1}, "bytes": {"start": first[0], "end": first[1]}},
                               {"chunks": {"start": 2, "end": 4}, "bytes": {"start": rest[0], "end": rest[1]}}]
    url = entry["url"]
    # Both ranges in one request (the client's multi-range fetching): one multipart/byteranges answer.
    both = httpx.get(url, headers={"Range": f"bytes={first[0]}-{first[1]},{rest[0]}-{rest[1]}"})
    assert both.status_code == 206
    assert parse_multipart(both) == [
        (f"bytes {first[0]}-{first[1]}/{len(f.xorb)}", f.xorb[first[0]:first[1] + 1]),
        (f"bytes {rest[0]}-{rest[1]}/{len(f.xorb)}", f.xorb[rest[0]:rest[1] + 1])]
    assert int(both.headers["content-length"]) == len(both.content)
    # No Range: the same set; one range (the client's default, split fetches): that range alone.
    assert parse_multipart(httpx.get(url)) == parse_multipart(both)
    for start, end in (first, rest, (rest[0] + 8, rest[1] - 8)):
        one = httpx.get(url, headers={"Range": f"bytes={start}-{end}"})
        assert one.status_code == 206 and one.content == f.xorb[start:end + 1]
        assert one.headers["content-range"] == f"bytes {start}-{end}/{len(f.xorb)}"
    # Chunk 1 (another file's bytes) through no Range, however asked; a changed link is refused.
    gap = chunk_bytes(f, 1, 2)
    for asked in (f"bytes={gap[0]}-{gap[1]}", f"bytes=0-{len(f.xorb) - 1}", f"bytes={first[0]}-{gap[0]}",
                  f"bytes={first[0]}-{first[1]},{gap[0]}-{gap[1]}", "bytes=-100", f"bytes={gap[0]}-"):
        assert httpx.get(url, headers={"Range": asked}).status_code == 403, asked
    widened = url.replace(f"bytes={first[0]}-{first[1]},", f"bytes={first[0]}-{gap[1]},")
    assert widened != url and httpx.get(widened).status_code == 403
    # A range past the xorb's end: 416 with the current length (RFC 9110).
    past = httpx.get(url, headers={"Range": f"bytes={len(f.xorb)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(f.xorb)}"


def test_v1_still_answers_one_link_per_term(server: ServerProcess, owner: tuple[str, str], repo_id: str) -> None:
    f = publish(server, owner, repo_id, seed=6)
    read = cas_headers(server, repo_id, owner[1], "read")
    answer = httpx.get(f"{server.url}/v1/reconstructions/{f.file_id}", headers=read)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "xorbs" not in body and len(body["terms"]) == 3
    entries = body["fetch_info"][f.xorb_hash]
    assert [e["range"] for e in entries] == [{"start": 0, "end": 1}, {"start": 2, "end": 4}]  # (0, 1) once
    rebuilt = {}
    for entry in entries:
        start, end = chunk_bytes(f, entry["range"]["start"], entry["range"]["end"])
        assert entry["url_range"] == {"start": start, "end": end}
        got = httpx.get(entry["url"])
        assert got.status_code == 200 and got.content == f.xorb[start:end + 1]
        chunks = [data for _, data in iter_chunks(io.BytesIO(got.content))]
        for i, data in enumerate(chunks):
            rebuilt[entry["range"]["start"] + i] = data
    assert b"".join(rebuilt[i] for a, b in LAYOUT for i in range(a, b)) == f.content


def test_reconstruction_ranges_and_416(server: ServerProcess, owner: tuple[str, str], repo_id: str) -> None:
    f = publish(server, owner, repo_id, seed=7)
    read = cas_headers(server, repo_id, owner[1], "read")
    size = len(f.content)
    for version in ("v1", "v2"):
        url = f"{server.url}/{version}/reconstructions/{f.file_id}"
        # Bytes 70010-70019 lie in the second term's first chunk (xorb chunk 2).
        ranged = httpx.get(url, headers={**read, "Range": "bytes=70010-70019"}).json()
        assert ranged["offset_into_first_range"] == 10
        assert ranged["terms"] == [{"hash": f.xorb_hash, "unpacked_length": SIZES[2], "range": {"start": 2, "end": 3}}]
        if version == "v2":
            (entry,) = ranged["xorbs"][f.xorb_hash]
            start, end = chunk_bytes(f, 2, 3)
            assert entry["ranges"] == [{"chunks": {"start": 2, "end": 3}, "bytes": {"start": start, "end": end}}]
            # The link of a ranged answer reaches only the chunks of that range.
            assert httpx.get(entry["url"], headers={"Range": f"bytes={start}-{end + 1}"}).status_code == 403
        tail = httpx.get(url, headers={**read, "Range": "bytes=-10"}).json()
        assert tail["terms"][-1]["range"] == {"start": 0, "end": 1}
        for asked in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}"):
            past = httpx.get(url, headers={**read, "Range": asked})
            assert past.status_code == 416, (version, asked)
            assert past.headers["content-range"] == f"bytes */{size}"
            assert past.headers["x-error-code"] == "RangeNotSatisfiable"


def test_each_reconstruction_answer_is_one_download_event(server: ServerProcess, owner: tuple[str, str],
                                                          repo_id: str) -> None:
    f = publish(server, owner, repo_id, seed=8)
    reader, token = server.user()
    read = cas_headers(server, repo_id, token, "read")  # xet-read-token/main: the token names main's commit
    v2 = httpx.get(f"{server.url}/v2/reconstructions/{f.file_id}", headers=read).json()
    for entry in v2["xorbs"][f.xorb_hash]:
        for r in entry["ranges"]:  # the xorb fetches add no event
            assert httpx.get(entry["url"], headers={"Range": f"bytes={r['bytes']['start']}-{r['bytes']['end']}"}) \
                .status_code == 206
    assert httpx.get(f"{server.url}/v1/reconstructions/{f.file_id}",
                     headers={**read, "Range": "bytes=0-99"}).status_code == 200
    events = audit_events(server, repo_id, 2)
    time.sleep(1.0)  # a third event (one per xorb fetch) would have been written by now
    events = audit_events(server, repo_id, 2)
    assert [(e.actor, e.path, e.revision, e.bytes) for e in events] == [
        (reader, f.path, f.commit, len(f.content)), (reader, f.path, f.commit, 100)]
    assert [e.details for e in events] == [
        {"transport": "xet", "xet_hash": f.file_id, "reconstruction": "v2"},
        {"transport": "xet", "xet_hash": f.file_id, "reconstruction": "v1", "range": "bytes=0-99"}]
    # A token asked for a revision that does not name the file (or names none) still downloads
    # it by a path of the repo, and records no revision.
    other = httpx.get(f"{server.url}/api/models/{repo_id}/xet-read-token/no-such-branch",
                      headers={"Authorization": f"Bearer {token}"}).json()
    assert httpx.get(f"{server.url}/v2/reconstructions/{f.file_id}",
                     headers={"Authorization": f"Bearer {other['accessToken']}"}).status_code == 200
    third = audit_events(server, repo_id, 3)[-1]
    assert (third.actor, third.path, third.revision) == (reader, f.path, None)


def test_the_real_client_downloads_through_v2_single_and_multi_range(server: ServerProcess,
                                                                    owner: tuple[str, str], repo_id: str,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    f = publish(server, owner, repo_id, seed=9)
    download = """
        from huggingface_hub import hf_hub_download, snapshot_download
        repo, path, target = sys.argv[1:4]
        print(hf_hub_download(repo, path, cache_dir=target + "/cache"))
        print(snapshot_download(repo, local_dir=target + "/snap"))
    """
    for multirange in ("0", "1"):
        before, versions = served(server), served_by_version(server)
        ranges_before = server.log().count(f"xet xorb range served: {f.xorb_hash} bytes ")
        events_before = len(audit_events(server, repo_id, 0, timeout=0))
        monkeypatch.setenv("HF_XET_CLIENT_ENABLE_MULTIRANGE_FETCHING", multirange)  # read by the client's subprocess
        out = run_python(server, owner[1], tmp_path / f"home-{multirange}", download, repo_id, f.path,
                         str(tmp_path / f"down-{multirange}"))
        cached, snap = out.split()
        assert Path(cached).read_bytes() == f.content
        assert (Path(snap) / f.path).read_bytes() == f.content
        after, versions_after = served(server), served_by_version(server)
        assert after[0] - before[0] == 2 and versions_after == (versions[0], versions[1] + 2), (versions, versions_after)
        marker = f"xet xorb range served: {f.xorb_hash} bytes "
        fetches = [line.split(marker)[1] for line in server.log().splitlines() if marker in line][ranges_before:]
        if multirange == "1":  # both ranges in one request per download
            assert fetches and all("," in line for line in fetches), fetches
        else:
            assert fetches and not any("," in line for line in fetches), fetches
        # One event per Xet download, naming the commit the client resolved (the snapshot also
        # fetches .gitattributes over plain HTTP).
        events = audit_events(server, repo_id, events_before + 3)[events_before:]
        assert sorted((e.path, e.revision, (e.details or {}).get("transport")) for e in events) == \
            [(".gitattributes", f.commit, None)] + [(f.path, f.commit, "xet")] * 2


def test_a_hub_download_past_the_end_answers_416_with_the_length(server: ServerProcess, owner: tuple[str, str],
                                                                 repo_id: str) -> None:
    """The file route's own 416 (local files: Starlette's FileResponse) names the length too."""
    f = publish(server, owner, repo_id, seed=10)
    url = f"{server.url}/{repo_id}/resolve/main/{f.path}"
    past = httpx.get(url, headers={"Authorization": f"Bearer {owner[1]}", "Range": f"bytes={len(f.content)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(f.content)}"
