"""Uploads with the default client: `huggingface_hub` with `hf_xet`, through the Xet protocol.

conftest sets HF_HUB_DISABLE_XET for the in-process client (huggingface_hub reads it at import),
so every Xet upload here runs the real client in a subprocess, without the variable, with its own
HF_HOME (its shard cache, which deduplicates later uploads, is per test). Hostile xorbs and
shards are sent directly with httpx and a valid CAS token; each leaves nothing visible.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import ServerProcess
from huggingface_hub import HfApi, hf_hub_download
from sqlalchemy import func, select

from releasehub.repos import service as repos
from releasehub.repos.models import Blob, UploadClaim
from releasehub.xet import service as xet_service
from releasehub.xet.hashing import chunk_hash, file_hash, hash_from_hex, hash_hex, verification_hash, xorb_hash
from releasehub.xet.models import XetFile, XetXorb
from releasehub.xet.shard import FileInfo, Term, build_shard
from releasehub.xet.xorb import LZ4, build_xorb

MiB = 1024 * 1024


def client_env(server: ServerProcess, token: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_XET", "HF_TOKEN")}
    env.update(HF_ENDPOINT=server.url, HF_TOKEN=token, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1")
    return env


def run_python(server: ServerProcess, token: str, home: Path, code: str, *args: str) -> str:
    """Run `code` with the real client, Xet enabled (hf_xet installed, no HF_HUB_DISABLE_XET)."""
    prelude = "import sys, huggingface_hub.constants as c\nassert not c.HF_HUB_DISABLE_XET\n"
    done = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), *args],
                          env=client_env(server, token, home), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"client failed:\n{done.stdout}\n{done.stderr}\n--- server log ---\n" + \
        server.log()[-3000:]
    return done.stdout


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def repo_pk(server: ServerProcess, repo_id: str) -> int:
    namespace, name = repo_id.split("/")
    with server.db.session() as session:
        repo = repos.find_repo(session, namespace, name)
        assert repo is not None
        return repo.id


def xet_files(server: ServerProcess, repo_id: str) -> dict[str, int]:
    """sha256 -> size of the files reconstructed from shards for this repo."""
    with server.db.session() as session:
        rows = session.execute(select(XetFile.sha256, XetFile.size).where(XetFile.repo_id == repo_pk(server, repo_id)))
        return dict(rows.all())  # type: ignore[arg-type]


def resolve_bytes(server: ServerProcess, repo_id: str, path: str, token: str) -> bytes:
    answer = httpx.get(f"{server.url}/{repo_id}/resolve/main/{path}", headers={"Authorization": f"Bearer {token}"},
                       follow_redirects=True, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.content


def assert_downloads_identical(server: ServerProcess, repo_id: str, token: str, files: dict[str, Path],
                               tmp: Path) -> None:
    for path, local in files.items():
        expected = local.read_bytes()
        assert resolve_bytes(server, repo_id, path, token) == expected, path
        got = hf_hub_download(repo_id, path, endpoint=server.url, token=token, cache_dir=tmp / "dl-cache")
        assert Path(got).read_bytes() == expected, path


def make_folder(root: Path) -> dict[str, Path]:
    rng = random.Random(7)
    (root / "sub").mkdir(parents=True)
    files = {
        "model.bin": rng.randbytes(700_000),
        "sub/weights.safetensors": b"\x00" + bytes(rng.choice(b"abcdefgh") for _ in range(300_000)),
        "README.md": b"# A model\n",
        "config.json": b'{"hidden_size": 8}\n',
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    return {name: root / name for name in files}


# ---------------------------------------------------------------- the real client


def test_hf_upload_of_a_folder_goes_through_xet(server: ServerProcess, owner: tuple[str, str], repo_id: str,
                                                tmp_path: Path) -> None:
    files = make_folder(tmp_path / "folder")
    done = subprocess.run([str(Path(sys.executable).parent / "hf"), "upload", repo_id, str(tmp_path / "folder"), "."],
                          env=client_env(server, owner[1], tmp_path / "hf-home"), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr + server.log()[-3000:]
    # The two LFS files came through Xet (reconstructed from shards), the small ones inline.
    assert xet_files(server, repo_id) == {sha256_of(files["model.bin"]): 700_000,
                                          sha256_of(files["sub/weights.safetensors"]): 300_001}
    assert_downloads_identical(server, repo_id, owner[1], files, tmp_path)
    # And with hf_xet enabled on the download side too (through Xet: see the download tests below).
    out = run_python(server, owner[1], tmp_path / "hf-home", """
        from huggingface_hub import snapshot_download
        print(snapshot_download(sys.argv[1], local_dir=sys.argv[2]))
    """, repo_id, str(tmp_path / "snap"))
    assert out.strip()
    for name, local in files.items():
        assert (tmp_path / "snap" / name).read_bytes() == local.read_bytes(), name


def test_upload_file_and_create_commit_go_through_xet(server: ServerProcess, owner: tuple[str, str], repo_id: str,
                                                      tmp_path: Path) -> None:
    rng = random.Random(11)
    one, two, three = (tmp_path / "one.bin", tmp_path / "two.bin", tmp_path / "three.bin")
    one.write_bytes(rng.randbytes(200_000))
    two.write_bytes(rng.randbytes(150_000))
    three.write_bytes(bytes(400_000))  # one repeated chunk: compresses, dedups within the file
    run_python(server, owner[1], tmp_path / "hf-home", """
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
        repo, one, two, three = sys.argv[1:5]
        api = HfApi()
        api.upload_file(path_or_fileobj=one, path_in_repo="one.bin", repo_id=repo)
        api.create_commit(repo, operations=[
            CommitOperationAdd(path_in_repo="dir/two.bin", path_or_fileobj=two),
            CommitOperationAdd(path_in_repo="dir/zeros.bin", path_or_fileobj=three),
            CommitOperationDelete(path_in_repo="one.bin"),
        ], commit_message="two files, one deleted")
        api.upload_file(path_or_fileobj=one, path_in_repo="again/one.bin", repo_id=repo)
    """, repo_id, str(one), str(two), str(three))
    assert set(xet_files(server, repo_id)) == {sha256_of(p) for p in (one, two, three)}
    files = {"dir/two.bin": two, "dir/zeros.bin": three, "again/one.bin": one}
    assert_downloads_identical(server, repo_id, owner[1], files, tmp_path)
    api = HfApi(endpoint=server.url, token=owner[1])
    assert set(api.list_repo_files(repo_id)) == {".gitattributes", *files}
    info = api.get_paths_info(repo_id, ["dir/two.bin"])[0]
    assert info.lfs is not None and info.lfs.sha256 == sha256_of(two)


@pytest.mark.slow
def test_a_re_upload_with_one_mib_changed_sends_under_ten_percent(server: ServerProcess, owner: tuple[str, str],
                                                                  repo_id: str, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    data = bytearray(random.Random(3).randbytes(64 * MiB))
    big.write_bytes(data)
    upload = """
        from huggingface_hub import HfApi
        HfApi().upload_file(path_or_fileobj=sys.argv[2], path_in_repo="big.bin", repo_id=sys.argv[1])
    """
    home = tmp_path / "hf-home"
    run_python(server, owner[1], home, upload, repo_id, str(big))
    with server.db.session() as session:
        first = xet_service.received_bytes(session, repo_pk(server, repo_id))
    assert first >= 64 * MiB
    data[30 * MiB:31 * MiB] = random.Random(4).randbytes(MiB)
    big.write_bytes(data)
    run_python(server, owner[1], home, upload, repo_id, str(big))
    with server.db.session() as session:
        second = xet_service.received_bytes(session, repo_pk(server, repo_id)) - first
    print(f"xorb bytes received: first upload {first}, re-upload {second}")
    assert 0 < second < first / 10, (first, second)
    got = httpx.get(f"{server.url}/{repo_id}/resolve/main/big.bin", headers={"Authorization": f"Bearer {owner[1]}"},
                    timeout=60)
    assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(data).hexdigest()
    # The re-uploaded file (terms over several xorbs, old and new) downloads through Xet, whole.
    before, versions_before = served(server), served_by_version(server)
    out = run_python(server, owner[1], tmp_path / "down-home", """
        from huggingface_hub import hf_hub_download
        print(hf_hub_download(sys.argv[1], "big.bin", cache_dir=sys.argv[2]))
    """, repo_id, str(tmp_path / "down"))
    assert sha256_of(Path(out.strip())) == hashlib.sha256(data).hexdigest()
    after = served(server)
    assert after[0] > before[0] and after[1] - before[1] >= 2, (before, after)
    assert served_by_version(server) == (versions_before[0], versions_before[1] + after[0] - before[0])  # all v2


# ---------------------------------------------------------------- tokens


def write_token(server: ServerProcess, repo_id: str, token: str | None, kind: str = "write") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{server.url}/api/models/{repo_id}/xet-{kind}-token/main", headers=headers)


def cas_headers(server: ServerProcess, repo_id: str, token: str, kind: str = "write") -> dict[str, str]:
    answer = write_token(server, repo_id, token, kind)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["casUrl"] == server.url == answer.headers["X-Xet-Cas-Url"]
    assert answer.headers["X-Xet-Access-Token"] == body["accessToken"]
    assert int(answer.headers["X-Xet-Token-Expiration"]) == body["exp"]
    return {"Authorization": f"Bearer {body['accessToken']}"}


def test_tokens_are_decided_and_scoped(server: ServerProcess, owner: tuple[str, str], repo_id: str) -> None:
    assert write_token(server, repo_id, None).status_code == 401
    reader = server.token(owner[0], scope="read")
    assert write_token(server, repo_id, reader).status_code == 403
    _, outsider = server.user()
    assert write_token(server, repo_id, outsider).status_code == 403
    assert write_token(server, repo_id, None, "read").status_code == 200  # public: anyone may download
    api = HfApi(endpoint=server.url, token=owner[1])
    private = f"{owner[0]}/private-{uuid.uuid4().hex[:6]}"
    api.create_repo(private, private=True)
    assert write_token(server, private, outsider, "read").status_code == 404
    gated = f"{owner[0]}/gated-{uuid.uuid4().hex[:6]}"
    api.create_repo(gated)
    api.update_repo_settings(gated, gated="manual")
    assert write_token(server, gated, outsider, "read").status_code == 403
    assert write_token(server, gated, owner[1], "read").status_code == 200
    pr = httpx.get(f"{server.url}/api/models/{repo_id}/xet-write-token/None", params={"create_pr": "1"},
                   headers={"Authorization": f"Bearer {owner[1]}"})
    assert pr.status_code == 400 and "Pull requests" in pr.headers["X-Error-Message"]

    chunks = [b"some chunk data " * 100]
    body = build_xorb(chunks)
    path = f"{server.url}/v1/xorbs/default/{hash_hex(xorb_hash([(chunk_hash(chunks[0]), len(chunks[0]))]))}"
    read = cas_headers(server, repo_id, owner[1], "read")
    assert httpx.post(path, content=body, headers=read).status_code == 403  # a read token cannot upload
    assert httpx.post(f"{server.url}/v1/shards", content=b"", headers=read).status_code == 403
    assert httpx.post(path, content=body).status_code == 401
    good = cas_headers(server, repo_id, owner[1])["Authorization"]
    prefix, repo, user, way, exp, sig = good.split(" ")[1].split(".")
    forged = f"Bearer {prefix}.{int(repo) + 1}.{user}.{way}.{exp}.{sig}"
    assert httpx.post(path, content=body, headers={"Authorization": forged}).status_code == 401
    assert httpx.post(path, content=body, headers={"Authorization": owner[1]}).status_code == 401  # the Hub token
    assert httpx.get(f"{server.url}/v1/chunks/default/{'0' * 64}", headers=read).status_code == 404
    answer = httpx.post(path, content=body, headers={"Authorization": good})
    assert answer.status_code == 200 and answer.json() == {"was_inserted": True}


# ---------------------------------------------------------------- hostile inputs


class Upload:
    """A client-like upload built by hand: chunks, their xorb, a shard describing one file."""

    def __init__(self, seed: int, sizes: tuple[int, ...] = (70_000, 50_000, 9_000)) -> None:
        rng = random.Random(seed)
        self.chunks = [rng.randbytes(n) for n in sizes]
        self.pairs = [(chunk_hash(c), len(c)) for c in self.chunks]
        self.xorb = build_xorb(self.chunks, LZ4)
        self.hash = hash_hex(xorb_hash(self.pairs))
        self.content = b"".join(self.chunks)
        self.sha256 = hashlib.sha256(self.content).hexdigest()

    def file_info(self, *, verification: bool = True, wrong_range_hash: bool = False, sha256: str | None = None,
                  chunk_end: int | None = None) -> FileInfo:
        end = len(self.chunks) if chunk_end is None else chunk_end
        term = Term(hash_from_hex(self.hash), sum(s for _, s in self.pairs[:end]), 0, end)
        range_hash = verification_hash([h for h, _ in self.pairs[:end]])
        if wrong_range_hash:
            range_hash = verification_hash([h for h, _ in self.pairs[1:end]])
        return FileInfo(file_hash(self.pairs[:end]), [term], [range_hash] if verification else None,
                        hash_from_hex(sha256 or self.sha256))

    def shard(self, **kwargs: object) -> bytes:
        return build_shard([self.file_info(**kwargs)])  # type: ignore[arg-type]


def nothing_visible(server: ServerProcess, repo_id: str, *shas: str) -> None:
    pk = repo_pk(server, repo_id)
    with server.db.session() as session:
        assert session.scalar(select(func.count()).select_from(UploadClaim).where(UploadClaim.repo_id == pk)) == 0
        assert session.scalar(select(func.count()).select_from(XetFile).where(XetFile.repo_id == pk)) == 0
        for sha in shas:
            assert session.get(Blob, sha) is None


def xorb_stored(server: ServerProcess, hex_hash: str) -> bool:
    with server.db.session() as session:
        row = session.get(XetXorb, hex_hash)
    return row is not None or (server.data_dir / "xet" / "xorbs" / hex_hash[:2] / hex_hash).exists()


def test_hostile_xorbs_are_refused_and_nothing_stored(server: ServerProcess, owner: tuple[str, str],
                                                      repo_id: str) -> None:
    headers = cas_headers(server, repo_id, owner[1])
    up = Upload(1)
    other = Upload(2)
    post = lambda name, body: httpx.post(f"{server.url}/v1/xorbs/default/{name}", content=body,  # noqa: E731
                                         headers=headers, timeout=60)
    wrong_hash = post(other.hash, up.xorb)
    assert wrong_hash.status_code == 400 and "nothing was stored" in wrong_hash.headers["X-Error-Message"]
    corrupt = bytearray(up.xorb)
    corrupt[20:40] = b"\xee" * 20  # inside the first chunk's LZ4 frame
    assert post(up.hash, bytes(corrupt)).status_code == 400
    truncated = up.xorb[:-5]
    assert post(up.hash, truncated).status_code == 400
    bad_version = b"\x07" + up.xorb[1:]
    assert post(up.hash, bad_version).status_code == 400
    assert post("XYZ", up.xorb).status_code == 400
    oversize = post(up.hash, bytes(64 * MiB + 64 * 1024 + 1))
    assert oversize.status_code == 413
    assert not xorb_stored(server, up.hash) and not xorb_stored(server, other.hash)
    nothing_visible(server, repo_id, up.sha256)
    assert post(up.hash, up.xorb).json() == {"was_inserted": True}
    assert post(up.hash, up.xorb).json() == {"was_inserted": False}
    nothing_visible(server, repo_id, up.sha256)  # a xorb alone names no file


def test_hostile_shards_are_refused_and_nothing_visible(server: ServerProcess, owner: tuple[str, str],
                                                        repo_id: str, tmp_path: Path) -> None:
    headers = cas_headers(server, repo_id, owner[1])
    shard = lambda body: httpx.post(f"{server.url}/v1/shards", content=body, headers=headers)  # noqa: E731
    up = Upload(5)
    # A shard naming a xorb that was never sent.
    assert shard(up.shard()).status_code == 400
    assert httpx.post(f"{server.url}/v1/xorbs/default/{up.hash}", content=up.xorb, headers=headers).status_code == 200
    for body in (
        up.shard(verification=False),  # no verification entries
        up.shard(wrong_range_hash=True),  # a verification entry that does not match the chunks
        up.shard(chunk_end=9),  # a range past the xorb's end
        up.shard(sha256="ab" * 32),  # a wrong sha256: reconstruction does not match
        b"not a shard at all",
        up.shard()[:-20],
    ):
        answer = shard(body)
        assert answer.status_code == 400, answer.text
    nothing_visible(server, repo_id, up.sha256, "ab" * 32)
    # A xorb another user sent (to their own repo) is refused: knowing its hash is not holding its bytes.
    api = HfApi(endpoint=server.url, token=owner[1])
    sender, sender_token = server.user()
    elsewhere = f"{sender}/other-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.url, token=sender_token).create_repo(elsewhere)
    theirs = Upload(6)
    other_headers = cas_headers(server, elsewhere, sender_token)
    assert httpx.post(f"{server.url}/v1/xorbs/default/{theirs.hash}", content=theirs.xorb,
                      headers=other_headers).status_code == 200
    assert shard(theirs.shard()).status_code == 400
    nothing_visible(server, repo_id, theirs.sha256)
    # The honest shard lands; the commit then names the file by sha256.
    answer = shard(up.shard())
    assert answer.status_code == 200 and answer.json()["result"] == 1
    assert shard(up.shard()).json()["result"] == 0
    source = tmp_path / "file.bin"
    source.write_bytes(up.content)
    with server.db.session() as session:
        assert session.get(Blob, up.sha256) is not None
    commit = (
        '{"key":"header","value":{"summary":"xet file"}}\n'
        f'{{"key":"lfsFile","value":{{"path":"file.bin","algo":"sha256","oid":"{up.sha256}","size":{len(up.content)}}}}}\n'
    )
    done = httpx.post(f"{server.url}/api/models/{repo_id}/commit/main", content=commit,
                      headers={"Authorization": f"Bearer {owner[1]}", "Content-Type": "application/x-ndjson"})
    assert done.status_code == 200, done.text
    assert resolve_bytes(server, repo_id, "file.bin", owner[1]) == up.content
    # A stranger may reuse this repo's xorb only for chunks of a file they may download.
    stranger, stranger_token = server.user()
    stranger_repo = f"{stranger}/s-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.url, token=stranger_token).create_repo(stranger_repo)
    stranger_headers = cas_headers(server, stranger_repo, stranger_token)
    api.update_repo_settings(repo_id, private=True)
    refused = httpx.post(f"{server.url}/v1/shards", content=up.shard(), headers=stranger_headers)
    assert refused.status_code == 400
    nothing_visible(server, stranger_repo)
    api.update_repo_settings(repo_id, private=False)  # now they could download it anyway
    allowed = httpx.post(f"{server.url}/v1/shards", content=up.shard(), headers=stranger_headers)
    assert allowed.status_code == 200, allowed.text


def test_the_same_file_to_a_second_repo_reuses_the_first_upload(server: ServerProcess, owner: tuple[str, str],
                                                                 repo_id: str, tmp_path: Path) -> None:
    """The client's shard cache names the first upload's xorbs and sends none: accepted because the
    uploader may download the file they were reconstructed into (the claim rule's second half)."""
    source = tmp_path / "weights.bin"
    source.write_bytes(random.Random(9).randbytes(900_000))
    second = f"{owner[0]}/second-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.url, token=owner[1]).create_repo(second)
    run_python(server, owner[1], tmp_path / "hf-home", """
        from huggingface_hub import HfApi
        for repo in sys.argv[2:]:
            HfApi().upload_file(path_or_fileobj=sys.argv[1], path_in_repo="weights.bin", repo_id=repo)
    """, str(source), repo_id, second)
    with server.db.session() as session:
        assert xet_service.received_bytes(session, repo_pk(server, repo_id)) > 900_000
        assert xet_service.received_bytes(session, repo_pk(server, second)) == 0
    assert resolve_bytes(server, second, "weights.bin", owner[1]) == source.read_bytes()


def test_xorbs_a_user_sent_serve_their_later_shards_after_the_first_repo_is_deleted(
        server: ServerProcess, owner: tuple[str, str], tmp_path: Path) -> None:
    """The client deduplicates against the xorbs in its shard cache for weeks: a second upload of the
    same file, to a new repo after the first was deleted, sends a shard and no xorb. The uploader sent
    those bytes once, so the shard is accepted (found by `make compat`: 34 client tests failed on it)."""
    source = tmp_path / "weights.bin"
    source.write_bytes(random.Random(11).randbytes(700_000))
    first, second = (f"{owner[0]}/{name}-{uuid.uuid4().hex[:6]}" for name in ("first", "second"))
    api = HfApi(endpoint=server.url, token=owner[1])
    api.create_repo(first)
    upload = """
        from huggingface_hub import HfApi
        HfApi().upload_file(path_or_fileobj=sys.argv[1], path_in_repo="weights.bin", repo_id=sys.argv[2])
    """
    run_python(server, owner[1], tmp_path / "hf-home", upload, str(source), first)
    api.delete_repo(first)
    api.create_repo(second)
    run_python(server, owner[1], tmp_path / "hf-home", upload, str(source), second)
    with server.db.session() as session:
        assert xet_service.received_bytes(session, repo_pk(server, second)) == 0  # no bytes sent again
    assert resolve_bytes(server, second, "weights.bin", owner[1]) == source.read_bytes()


# ---------------------------------------------------------------- downloads through Xet


def served(server: ServerProcess) -> tuple[int, int]:
    """(reconstructions, xorb ranges) the server has served so far, from its log."""
    text = server.log()
    return text.count("xet reconstruction served"), text.count("xet xorb range served")


def served_by_version(server: ServerProcess) -> tuple[int, int]:
    """(v1, v2) reconstructions the server has answered so far, from its log."""
    text = server.log()
    return text.count("xet reconstruction served: v1"), text.count("xet reconstruction served: v2")


def xet_hash_of(server: ServerProcess, repo_id: str, sha256: str) -> str:
    with server.db.session() as session:
        found = session.scalar(select(XetFile.file_hash).where(XetFile.repo_id == repo_pk(server, repo_id),
                                                               XetFile.sha256 == sha256))
    assert found is not None
    return found


def test_xet_uploads_download_through_xet_and_lfs_uploads_over_http(
        server: ServerProcess, owner: tuple[str, str], repo_id: str, tmp_path: Path) -> None:
    files = make_folder(tmp_path / "folder")
    run_python(server, owner[1], tmp_path / "up-home", """
        from huggingface_hub import HfApi
        HfApi().upload_folder(folder_path=sys.argv[2], repo_id=sys.argv[1])
    """, repo_id, str(tmp_path / "folder"))
    # One LFS file sent over LFS (in-process client: HF_HUB_DISABLE_XET), never Xet-advertised.
    lfs_file = tmp_path / "lfs.bin"
    lfs_file.write_bytes(random.Random(21).randbytes(400_000))
    HfApi(endpoint=server.url, token=owner[1]).upload_file(path_or_fileobj=str(lfs_file), path_in_repo="lfs.bin",
                                                           repo_id=repo_id)
    files["lfs.bin"] = lfs_file
    xet_paths = {"model.bin", "sub/weights.safetensors"}
    hashes = {p: xet_hash_of(server, repo_id, sha256_of(files[p])) for p in xet_paths}
    headers = {"Authorization": f"Bearer {owner[1]}"}
    for path in files:
        head = httpx.head(f"{server.url}/{repo_id}/resolve/main/{path}", headers=headers)
        assert head.status_code == 200
        if path in xet_paths:
            assert head.headers["X-Xet-Hash"] == hashes[path]
            assert head.links["xet-auth"]["url"].startswith(f"{server.url}/api/models/{repo_id}/xet-read-token/")
        else:
            assert "x-xet-hash" not in head.headers and "xet-auth" not in head.links, path
    tree = httpx.get(f"{server.url}/api/models/{repo_id}/tree/main", params={"recursive": "1"}, headers=headers)
    assert {e["path"]: e.get("xetHash") for e in tree.json() if e["type"] == "file"} == {
        ".gitattributes": None, **{p: hashes.get(p) for p in files}}
    info = httpx.post(f"{server.url}/api/models/{repo_id}/paths-info/main", headers=headers,
                      data={"paths": ["model.bin", "lfs.bin"]}).json()
    assert {e["path"]: e.get("xetHash") for e in info} == {"model.bin": hashes["model.bin"], "lfs.bin": None}

    before, versions_before = served(server), served_by_version(server)
    out = run_python(server, owner[1], tmp_path / "down-home", """
        from huggingface_hub import hf_hub_download, snapshot_download
        repo, target = sys.argv[1:3]
        print(hf_hub_download(repo, "model.bin", cache_dir=target + "/cache"))
        print(hf_hub_download(repo, "lfs.bin", cache_dir=target + "/cache"))
        print(hf_hub_download(repo, "sub/weights.safetensors", cache_dir=target + "/anon", token=False))
        print(snapshot_download(repo, local_dir=target + "/snap"))
    """, repo_id, str(tmp_path / "down"))
    model, lfs, weights, _ = out.split()
    assert Path(model).read_bytes() == files["model.bin"].read_bytes()
    assert Path(lfs).read_bytes() == lfs_file.read_bytes()
    assert Path(weights).read_bytes() == files["sub/weights.safetensors"].read_bytes()
    for name, local in files.items():
        assert (tmp_path / "down" / "snap" / name).read_bytes() == local.read_bytes(), name
    after = served(server)
    # Three Xet downloads of the two Xet files (the snapshot may reuse the shared blob store).
    assert after[0] - before[0] >= 3 and after[1] - before[1] >= 3, (before, after)
    # The client asked v2 and never needed its v1 fallback.
    versions_after = served_by_version(server)
    assert versions_after[0] == versions_before[0], (versions_before, versions_after)
    assert versions_after[1] - versions_before[1] == after[0] - before[0], (versions_before, versions_after)


def cas_get(server: ServerProcess, path: str, cas: dict[str, str], **headers: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers={**cas, **headers})


def test_reconstructions_are_decided_and_xorb_links_signed(server: ServerProcess, owner: tuple[str, str],
                                                           repo_id: str) -> None:
    from releasehub.services import load_signing_key
    from releasehub.xet.tokens import RangeLink

    # By hand: one xorb of three chunks; the committed file uses only the first two.
    headers = cas_headers(server, repo_id, owner[1])
    up = Upload(31, sizes=(70_000, 50_000, 9_000))
    assert httpx.post(f"{server.url}/v1/xorbs/default/{up.hash}", content=up.xorb, headers=headers).status_code == 200
    info = up.file_info(chunk_end=2)
    two = b"".join(up.chunks[:2])
    info = FileInfo(info.file_hash, info.terms, info.verification, hash_from_hex(hashlib.sha256(two).hexdigest()))
    assert httpx.post(f"{server.url}/v1/shards", content=build_shard([info]), headers=headers).status_code == 200
    sha = hashlib.sha256(two).hexdigest()
    commit = (
        '{"key":"header","value":{"summary":"xet file"}}\n'
        f'{{"key":"lfsFile","value":{{"path":"weights/a.bin","algo":"sha256","oid":"{sha}","size":{len(two)}}}}}\n'
    )
    done = httpx.post(f"{server.url}/api/models/{repo_id}/commit/main", content=commit,
                      headers={"Authorization": f"Bearer {owner[1]}", "Content-Type": "application/x-ndjson"})
    assert done.status_code == 200, done.text
    file_id = hash_hex(info.file_hash)
    _, outsider = server.user()
    read = cas_headers(server, repo_id, outsider, "read")
    answer = cas_get(server, f"/v1/reconstructions/{file_id}", read)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["offset_into_first_range"] == 0
    assert body["terms"] == [{"hash": up.hash, "unpacked_length": len(two), "range": {"start": 0, "end": 2}}]
    (fetch,) = body["fetch_info"][up.hash]
    first_two = len(build_xorb(up.chunks[:2], LZ4))
    # The link covers only this file's chunks, not the third chunk packed in the same xorb.
    assert fetch["url_range"] == {"start": 0, "end": first_two - 1} and first_two < len(up.xorb)
    url = fetch["url"]
    whole = httpx.get(url)  # no bearer token: the link is the credential
    assert whole.status_code == 200 and whole.content == up.xorb[:first_two]
    part = httpx.get(url, headers={"Range": "bytes=8-99"})
    assert part.status_code == 206 and part.content == up.xorb[8:100]
    assert part.headers["Content-Range"] == f"bytes 8-99/{len(up.xorb)}"
    assert httpx.get(url, headers={"Range": f"bytes=0-{len(up.xorb) - 1}"}).status_code == 403  # outside the link
    changed = url.replace(f"bytes=0-{first_two - 1}", f"bytes=0-{len(up.xorb) - 1}")
    assert changed != url and httpx.get(changed).status_code == 403
    key = load_signing_key(server.db)
    expired = RangeLink(up.hash, ((0, first_two - 1),), int(time.time()) - 5)
    assert httpx.get(f"{server.url}/v1/xorb-ranges/{up.hash}?{expired.query(key)}").status_code == 403
    assert httpx.get(url.replace("sig=", "sig=0")).status_code == 403
    # Range: inside the file (the second chunk only), and past its end.
    ranged = cas_get(server, f"/v1/reconstructions/{file_id}", read, Range="bytes=70010-70019").json()
    assert ranged["offset_into_first_range"] == 10
    assert ranged["terms"] == [{"hash": up.hash, "unpacked_length": 50_000, "range": {"start": 1, "end": 2}}]
    assert cas_get(server, f"/v1/reconstructions/{file_id}", read, Range=f"bytes={len(two)}-").status_code == 416
    # A write token, no token: refused.
    assert cas_get(server, f"/v1/reconstructions/{file_id}", headers).status_code == 403
    assert httpx.get(f"{server.url}/v1/reconstructions/{file_id}").status_code == 401
    assert httpx.get(f"{server.url}/v2/reconstructions/{file_id}").status_code == 401

    def same_as_unknown(answer: httpx.Response, asked: str) -> None:
        unknown = "0" * 63 + "1"
        none = cas_get(server, f"/v1/reconstructions/{unknown}", read)
        assert answer.status_code == 404
        assert (answer.headers.get("X-Error-Code"), answer.headers["X-Error-Message"].replace(asked, "H"),
                answer.text.replace(asked, "H")) == (none.headers.get("X-Error-Code"),
                                                      none.headers["X-Error-Message"].replace(unknown, "H"),
                                                      none.text.replace(unknown, "H"))

    # A stage hides weights/** from outsiders: the same token's reconstruction answers as for no file.
    answer = httpx.put(f"{server.url}/api/models/{repo_id}/policy", headers={"Authorization": f"Bearer {owner[1]}"},
                       json={"stages": [{"name": "later", "files": ["weights/**"], "releases": []}]})
    assert answer.status_code == 200, answer.text
    same_as_unknown(cas_get(server, f"/v1/reconstructions/{file_id}", read), file_id)
    head = httpx.head(f"{server.url}/{repo_id}/resolve/main/weights/a.bin", headers={"Authorization": f"Bearer {outsider}"})
    assert head.status_code == 404 and "x-xet-hash" not in head.headers
    tree = httpx.get(f"{server.url}/api/models/{repo_id}/tree/main", params={"recursive": "1"},
                     headers={"Authorization": f"Bearer {outsider}"}).text
    assert file_id not in tree and "weights" not in tree
    own = cas_get(server, f"/v1/reconstructions/{file_id}", cas_headers(server, repo_id, owner[1], "read"))
    assert own.status_code == 200  # the owner may download it
    # A token of another repo, even a public one with the owner's token: 404 as for an unknown hash.
    elsewhere = f"{owner[0]}/other-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.url, token=owner[1]).create_repo(elsewhere)
    other_read = cas_headers(server, elsewhere, owner[1], "read")
    answer = cas_get(server, f"/v1/reconstructions/{file_id}", other_read)
    assert answer.status_code == 404


def test_a_gated_repo_gives_no_read_token_and_no_reconstruction_without_a_grant(
        server: ServerProcess, owner: tuple[str, str], repo_id: str, tmp_path: Path) -> None:
    source = tmp_path / "w.bin"
    source.write_bytes(random.Random(41).randbytes(300_000))
    run_python(server, owner[1], tmp_path / "home", """
        from huggingface_hub import HfApi
        HfApi().upload_file(path_or_fileobj=sys.argv[2], path_in_repo="w.bin", repo_id=sys.argv[1])
    """, repo_id, str(source))
    file_id = xet_hash_of(server, repo_id, sha256_of(source))
    _, outsider = server.user()
    early = cas_headers(server, repo_id, outsider, "read")  # before the gate
    HfApi(endpoint=server.url, token=owner[1]).update_repo_settings(repo_id, gated="manual")
    assert write_token(server, repo_id, outsider, "read").status_code == 403
    head = httpx.head(f"{server.url}/{repo_id}/resolve/main/w.bin", headers={"Authorization": f"Bearer {outsider}"})
    assert head.status_code == 403 and "x-xet-hash" not in head.headers and "link" not in head.headers
    tree = httpx.get(f"{server.url}/api/models/{repo_id}/tree/main", headers={"Authorization": f"Bearer {outsider}"})
    # The tree of a gated repo is readable; the entry may carry its Xet hash, but no token reads it.
    assert tree.status_code == 200
    refused = cas_get(server, f"/v1/reconstructions/{file_id}", early)
    unknown = cas_get(server, f"/v1/reconstructions/{'0' * 64}", early)
    assert refused.status_code == unknown.status_code == 404
    assert refused.headers["X-Error-Message"].replace(file_id, "H") == \
        unknown.headers["X-Error-Message"].replace("0" * 64, "H")
    # The real client, without a grant, gets no file (and no read token), with Xet enabled.
    done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import GatedRepoError
        try:
            hf_hub_download(sys.argv[1], "w.bin", cache_dir=sys.argv[2])
        except GatedRepoError:
            print("gated")
    """), repo_id, str(tmp_path / "c")], env=client_env(server, outsider, tmp_path / "h2"), capture_output=True,
        text=True, timeout=120)
    assert done.stdout.strip() == "gated", done.stdout + done.stderr


# ---------------------------------------------------------------- cross-repo copies


def test_cross_repo_copies_claim_only_what_the_copier_may_download(server: ServerProcess, owner: tuple[str, str],
                                                                    repo_id: str, tmp_path: Path) -> None:
    """`CommitOperationCopy(src_repo_id=...)` calls `lfs-files/duplicate` on the source: the file
    becomes the copier's claim in the target only when they may download it in the source, now."""
    source = tmp_path / "weights.bin"
    source.write_bytes(random.Random(11).randbytes(400_000))
    run_python(server, owner[1], tmp_path / "hf-home", """
        from huggingface_hub import HfApi
        HfApi().upload_file(path_or_fileobj=sys.argv[1], path_in_repo="weights.bin", repo_id=sys.argv[2])
    """, str(source), repo_id)
    copier, copier_token = server.user()
    target = f"{copier}/copy-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.url, token=copier_token).create_repo(target)
    copy = """
        from huggingface_hub import HfApi, CommitOperationCopy
        HfApi().create_commit(sys.argv[2], [CommitOperationCopy("weights.bin", "copied.bin", src_repo_id=sys.argv[1],
                                                                src_repo_type="model")], commit_message="copy")
    """
    run_python(server, copier_token, tmp_path / "hf-copier", copy, repo_id, target)
    assert resolve_bytes(server, target, "copied.bin", copier_token) == source.read_bytes()
    assert xet_hash_of(server, target, sha256_of(source))  # the copy downloads through Xet too

    # Once the source is staged, the same copy is refused, and reads as a file that never existed.
    staged = {"stages": [{"name": "later", "files": ["*.bin"], "releases": []}]}
    assert httpx.put(f"{server.url}/api/models/{repo_id}/policy", json=staged,
                     headers={"Authorization": f"Bearer {owner[1]}"}).status_code == 200
    other = f"{copier}/copy2-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.url, token=copier_token).create_repo(other)
    url = f"{server.url}/api/models/{repo_id}/lfs-files/duplicate"
    headers = {"Authorization": f"Bearer {copier_token}"}
    hidden = httpx.post(url, headers=headers, json={"target": {"type": "model", "name": other}, "files": [
        {"sha256": sha256_of(source), "xetHash": "0" * 64, "filename": "weights.bin"}]}).json()
    missing = httpx.post(url, headers=headers, json={"target": {"type": "model", "name": other}, "files": [
        {"sha256": "ab" * 32, "xetHash": "0" * 64, "filename": "weights.bin"}]}).json()
    assert hidden["failed"][0]["error"].replace(sha256_of(source), "X") == missing["failed"][0]["error"].replace(
        "ab" * 32, "X")
    with server.db.session() as session:
        claims = session.scalars(select(UploadClaim.sha256).where(UploadClaim.repo_id == repo_pk(server, other)))
        assert list(claims) == []
    # Writing the target is needed too: a copy into someone else's repo is refused.
    foreign = httpx.post(url, headers={"Authorization": f"Bearer {owner[1]}"}, json={
        "target": {"type": "model", "name": other}, "files": [{"sha256": sha256_of(source)}]})
    assert foreign.status_code == 403
