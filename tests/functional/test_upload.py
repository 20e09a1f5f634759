"""Uploads with the unchanged `huggingface_hub` client: files, folders, multi-operation commits,
optimistic concurrency, branches and tags, de-duplication, and model cards that do not parse."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import pooled_server
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationCopy,
    CommitOperationDelete,
    HfApi,
)
from huggingface_hub import lfs as hf_lfs
from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError


@pytest.fixture(scope="module", params=["sqlite", "postgres", "s3"])
def server(request: pytest.FixtureRequest, _server_pool, tmp_path_factory):  # type: ignore[no-untyped-def]
    """This module also runs on blobs in a real S3-compatible store (SQLite + SeaweedFS)."""
    return pooled_server(str(request.param), _server_pool, tmp_path_factory, request)

LFS_HEADERS = {"Accept": "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json"}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _read(server, repo_id: str, path: str, revision: str = "main", token: str | None = None) -> bytes:
    response = httpx.get(f"{server.url}/{repo_id}/resolve/{revision}/{path}",
                         headers=_auth(token) if token else {}, timeout=30, follow_redirects=True)
    response.raise_for_status()
    return response.content


def _files(api: HfApi, repo_id: str, revision: str = "main") -> set[str]:
    return set(api.list_repo_files(repo_id, revision=revision))


def _head(api: HfApi, repo_id: str, revision: str = "main") -> str:
    sha = api.model_info(repo_id, revision=revision).sha
    assert sha is not None
    return sha


# ---------------------------------------------------------------- files and folders


def test_upload_file_from_bytes_and_path(api: HfApi, repo_id: str, server, tmp_path: Path) -> None:
    info = api.upload_file(path_or_fileobj=b"hello world\n", path_in_repo="docs/hello.txt", repo_id=repo_id)
    assert len(info.oid) == 40
    assert _head(api, repo_id) == info.oid
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(bytes(range(256)) * 1000)
    api.upload_file(path_or_fileobj=str(weights), path_in_repo="w.safetensors", repo_id=repo_id,
                    commit_message="add weights")
    assert _files(api, repo_id) == {".gitattributes", "docs/hello.txt", "w.safetensors"}
    assert _read(server, repo_id, "docs/hello.txt") == b"hello world\n"
    assert _read(server, repo_id, "w.safetensors") == weights.read_bytes()
    # The regular file is stored inline, the safetensors through LFS.
    by_path = {f.path: f for f in api.get_paths_info(repo_id, ["docs/hello.txt", "w.safetensors"])}
    assert by_path["docs/hello.txt"].lfs is None
    assert by_path["w.safetensors"].lfs is not None
    assert by_path["w.safetensors"].lfs.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    commits = api.list_repo_commits(repo_id)
    assert [c.title for c in commits][:2] == ["add weights", "Upload docs/hello.txt with huggingface_hub"]


def test_upload_folder_nested(api: HfApi, repo_id: str, server, tmp_path: Path) -> None:
    folder = tmp_path / "release"
    (folder / "sub" / "deeper").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\ntags: [demo]\n---\n# Demo\n")
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    (folder / "sub" / "a.txt").write_text("a")
    (folder / "sub" / "deeper" / "b.bin").write_bytes(b"\x00\x01" * 5000)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="release 1")
    assert info.oid == _head(api, repo_id)
    assert _files(api, repo_id) == {".gitattributes", "README.md", "config.json", "sub/a.txt",
                                    "sub/deeper/b.bin"}
    assert _read(server, repo_id, "sub/deeper/b.bin") == b"\x00\x01" * 5000
    model = api.model_info(repo_id)
    assert model.card_data is not None and model.card_data["license"] == "apache-2.0"
    assert "demo" in (model.tags or [])
    # Into a sub-folder of the repo.
    api.upload_folder(folder_path=str(folder / "sub"), path_in_repo="copy/of/sub", repo_id=repo_id)
    assert {"copy/of/sub/a.txt", "copy/of/sub/deeper/b.bin"} <= _files(api, repo_id)


# ---------------------------------------------------------------- create_commit


def test_create_commit_add_delete_copy(api: HfApi, repo_id: str, server) -> None:
    lfs_bytes = b"\x00LFS" * 4096
    api.create_commit(repo_id, [
        CommitOperationAdd("keep.txt", b"keep"),
        CommitOperationAdd("gone.txt", b"to be deleted"),
        CommitOperationAdd("folder/one.txt", b"1"),
        CommitOperationAdd("folder/inner/two.txt", b"2"),
        CommitOperationAdd("model.safetensors", lfs_bytes),
    ], commit_message="base")
    info = api.create_commit(repo_id, [
        CommitOperationAdd("new.txt", b"new"),
        CommitOperationDelete("gone.txt"),
        CommitOperationDelete("folder/"),
        CommitOperationCopy("model.safetensors", "copies/model.safetensors"),
        CommitOperationCopy("keep.txt", "copies/keep.txt"),
    ], commit_message="mixed", commit_description="adds, deletes and copies")
    assert _head(api, repo_id) == info.oid
    assert _files(api, repo_id) == {".gitattributes", "keep.txt", "new.txt", "model.safetensors",
                                    "copies/model.safetensors", "copies/keep.txt"}
    assert _read(server, repo_id, "copies/model.safetensors") == lfs_bytes
    assert _read(server, repo_id, "copies/keep.txt") == b"keep"
    assert _read(server, repo_id, "new.txt") == b"new"
    copied = {f.path: f for f in api.get_paths_info(repo_id, ["model.safetensors", "copies/model.safetensors"])}
    assert copied["copies/model.safetensors"].lfs is not None
    assert copied["copies/model.safetensors"].lfs.sha256 == copied["model.safetensors"].lfs.sha256
    commit = api.list_repo_commits(repo_id)[0]
    assert commit.commit_id == info.oid
    assert commit.title == "mixed"
    assert commit.message == "adds, deletes and copies"


def test_delete_folder_named_without_its_slash(api: HfApi, repo_id: str) -> None:
    api.create_commit(repo_id, [CommitOperationAdd("dir/a.txt", b"a"), CommitOperationAdd("dir/b/c.txt", b"c"),
                                CommitOperationAdd("dirt.txt", b"t")], commit_message="base")
    api.create_commit(repo_id, [CommitOperationDelete("dir")], commit_message="drop dir")  # no trailing /
    assert _files(api, repo_id) == {".gitattributes", "dirt.txt"}


def test_delete_missing_file_is_rejected_and_nothing_changes(api: HfApi, repo_id: str) -> None:
    head = _head(api, repo_id)
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_commit(repo_id, [CommitOperationAdd("x.txt", b"x"), CommitOperationDelete("nope.txt")],
                          commit_message="bad delete")
    assert excinfo.value.response.status_code == 404
    assert _head(api, repo_id) == head


def test_parent_commit_is_honoured(api: HfApi, repo_id: str) -> None:
    first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="f.txt", repo_id=repo_id)
    second = api.create_commit(repo_id, [CommitOperationAdd("f.txt", b"v2")], commit_message="v2",
                               parent_commit=first.oid)
    assert _head(api, repo_id) == second.oid
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_commit(repo_id, [CommitOperationAdd("f.txt", b"v3")], commit_message="stale",
                          parent_commit=first.oid)
    assert excinfo.value.response.status_code == 412
    assert _head(api, repo_id) == second.oid
    assert api.list_repo_commits(repo_id)[0].title == "v2"


def test_commit_to_missing_branch(api: HfApi, repo_id: str) -> None:
    with pytest.raises(RevisionNotFoundError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id,
                        revision=f"no-such-branch-{uuid.uuid4().hex[:6]}")
    assert _files(api, repo_id) == {".gitattributes"}


def test_commit_to_new_branch(api: HfApi, repo_id: str, server) -> None:
    base = api.upload_file(path_or_fileobj=b"main file", path_in_repo="a.txt", repo_id=repo_id)
    api.create_branch(repo_id, branch="dev")
    dev = api.upload_file(path_or_fileobj=b"dev file", path_in_repo="b.txt", repo_id=repo_id, revision="dev")
    assert _head(api, repo_id, "dev") == dev.oid
    assert _head(api, repo_id) == base.oid
    assert _files(api, repo_id, "dev") == {".gitattributes", "a.txt", "b.txt"}
    assert _files(api, repo_id) == {".gitattributes", "a.txt"}
    assert _read(server, repo_id, "b.txt", revision="dev") == b"dev file"
    refs = api.list_repo_refs(repo_id)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": base.oid, "dev": dev.oid}
    # The dev history continues from main's head.
    assert [c.commit_id for c in api.list_repo_commits(repo_id, revision="dev")][:2] == [dev.oid, base.oid]


def test_tags_create_and_delete(api: HfApi, repo_id: str, server) -> None:
    first = api.upload_file(path_or_fileobj=b"1", path_in_repo="v.txt", repo_id=repo_id)
    api.create_tag(repo_id, tag="v1.0", tag_message="first release")
    api.upload_file(path_or_fileobj=b"2", path_in_repo="v.txt", repo_id=repo_id)
    refs = api.list_repo_refs(repo_id)
    assert {t.name: t.target_commit for t in refs.tags} == {"v1.0": first.oid}
    assert _read(server, repo_id, "v.txt", revision="v1.0") == b"1"
    assert _read(server, repo_id, "v.txt") == b"2"
    # Tags are immutable: committing to one is refused, nothing moves.
    with pytest.raises(HfHubHTTPError):
        api.upload_file(path_or_fileobj=b"3", path_in_repo="v.txt", repo_id=repo_id, revision="v1.0")
    assert api.list_repo_refs(repo_id).tags[0].target_commit == first.oid
    api.delete_tag(repo_id, tag="v1.0")
    assert api.list_repo_refs(repo_id).tags == []
    with pytest.raises(RevisionNotFoundError):
        api.delete_tag(repo_id, tag="v1.0")
    # The tag name is free again.
    api.create_tag(repo_id, tag="v1.0")
    assert api.list_repo_refs(repo_id).tags[0].target_commit == _head(api, repo_id)


# ---------------------------------------------------------------- de-duplication


def test_unchanged_files_are_skipped(api: HfApi, repo_id: str, server, owner) -> None:
    first = api.upload_file(path_or_fileobj=b"same content", path_in_repo="same.txt", repo_id=repo_id)
    # preupload names the oid of the existing file, so the client can tell it is unchanged.
    sample = base64.b64encode(b"same content").decode()
    response = httpx.post(
        f"{server.url}/api/models/{repo_id}/preupload/main",
        json={"files": [{"path": "same.txt", "sample": sample, "size": 12},
                        {"path": "other.txt", "sample": sample, "size": 12}]},
        headers=_auth(owner[1]), timeout=30,
    )
    assert response.status_code == 200, response.text
    by_path = {f["path"]: f for f in response.json()["files"]}
    assert by_path["same.txt"]["oid"] == hashlib.sha1(b"blob 12\x00same content").hexdigest()
    assert by_path["same.txt"]["uploadMode"] == "regular"
    assert by_path["other.txt"]["oid"] is None
    assert response.json()["commitOid"] == first.oid
    # Re-uploading the same bytes makes no commit.
    again = api.upload_file(path_or_fileobj=b"same content", path_in_repo="same.txt", repo_id=repo_id)
    assert again.oid == first.oid
    assert len(api.list_repo_commits(repo_id)) == 2


def test_unchanged_lfs_files_are_skipped(api: HfApi, repo_id: str, tmp_path: Path) -> None:
    # The client compares the sha256 of an LFS file with preupload's `oid`: re-running
    # upload_folder on an unchanged folder makes no commit.
    (tmp_path / "w.safetensors").write_bytes(b"\x01" * 5000)
    (tmp_path / "notes.txt").write_text("notes")
    first = api.upload_folder(folder_path=str(tmp_path), repo_id=repo_id)
    again = api.upload_folder(folder_path=str(tmp_path), repo_id=repo_id)
    assert again.oid == first.oid
    assert len(api.list_repo_commits(repo_id)) == 2


def test_same_lfs_content_is_not_uploaded_twice(api: HfApi, repo_id: str, server, owner, monkeypatch) -> None:
    content = uuid.uuid4().bytes * 20_000
    oid = hashlib.sha256(content).hexdigest()
    batch_url = f"{server.url}/{repo_id}.git/info/lfs/objects/batch"
    body = {"operation": "upload", "transfers": ["basic", "multipart"], "hash_algo": "sha256",
            "objects": [{"oid": oid, "size": len(content)}]}
    before = httpx.post(batch_url, json=body, headers={**LFS_HEADERS, **_auth(owner[1])}, timeout=30)
    assert before.status_code == 200, before.text
    assert "upload" in before.json()["objects"][0]["actions"]

    api.upload_file(path_or_fileobj=content, path_in_repo="a.safetensors", repo_id=repo_id)
    after = httpx.post(batch_url, json=body, headers={**LFS_HEADERS, **_auth(owner[1])}, timeout=30)
    assert after.status_code == 200, after.text
    obj = after.json()["objects"][0]
    assert obj["oid"] == oid and obj["size"] == len(content)
    assert "actions" not in obj and "error" not in obj

    # The client, told there is nothing to send, sends no bytes: no PUT at all.
    puts: list[str] = []
    real_single, real_multi = hf_lfs._upload_single_part, hf_lfs._upload_multi_part
    monkeypatch.setattr(hf_lfs, "_upload_single_part", lambda **kw: (puts.append("single"), real_single(**kw)))
    monkeypatch.setattr(hf_lfs, "_upload_multi_part", lambda **kw: (puts.append("multi"), real_multi(**kw)))
    api.upload_file(path_or_fileobj=content, path_in_repo="copy/b.safetensors", repo_id=repo_id)
    assert puts == []
    assert _read(server, repo_id, "copy/b.safetensors") == content
    # A different content does go through a PUT (the spy works).
    api.upload_file(path_or_fileobj=content + b"!", path_in_repo="c.safetensors", repo_id=repo_id)
    assert puts == ["single"]


# ---------------------------------------------------------------- model cards


BROKEN_CARD = "---\nlicense: mit\ntags: [unclosed\n  - x: : y\n---\n# Broken\n"


def test_validate_yaml_rejects_broken_yaml(server) -> None:
    response = httpx.post(f"{server.url}/api/validate-yaml", json={"content": BROKEN_CARD, "repoType": "model"},
                          timeout=30)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors and "YAML" in errors[0]["message"]
    good = httpx.post(f"{server.url}/api/validate-yaml", json={"content": "---\nlicense: mit\n---\n"}, timeout=30)
    assert good.status_code == 200
    assert good.json() == {"errors": [], "warnings": []}
    # Valid YAML whose model-index is not the Hub's shape is refused too (issue 12: `model-index: foo`).
    shaped = httpx.post(f"{server.url}/api/validate-yaml", json={"content": "---\nmodel-index: foo\n---\n"},
                        timeout=30)
    assert shaped.status_code == 400 and "model-index must be a list" in shaped.json()["errors"][0]["message"]


def test_upload_folder_refuses_broken_card_before_uploading(api: HfApi, repo_id: str, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(BROKEN_CARD)
    (tmp_path / "w.safetensors").write_bytes(b"\x01" * 1000)
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        api.upload_folder(folder_path=str(tmp_path), repo_id=repo_id)
    assert _files(api, repo_id) == {".gitattributes"}


def test_broken_card_is_kept_as_a_file_and_reported(api: HfApi, repo_id: str, server, owner, monkeypatch) -> None:
    # huggingface_hub 2.x validates README.md in upload_file too (create_commit calls /api/validate-yaml):
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        api.upload_file(path_or_fileobj=BROKEN_CARD.encode(), path_in_repo="README.md", repo_id=repo_id)
    # A client that skips the check (older clients, git pushes) still gets its file stored.
    monkeypatch.setattr(api, "_validate_yaml", lambda *args, **kwargs: None)
    info = api.upload_file(path_or_fileobj=BROKEN_CARD.encode(), path_in_repo="README.md", repo_id=repo_id)
    assert _head(api, repo_id) == info.oid
    assert _read(server, repo_id, "README.md") == BROKEN_CARD.encode()

    raw = httpx.get(f"{server.url}/api/models/{repo_id}", headers=_auth(owner[1]), timeout=30)
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert "not valid YAML" in body["cardError"]
    assert "cardData" not in body
    assert "README.md" in {s["rfilename"] for s in body["siblings"]}
    model = api.model_info(repo_id)
    assert "README.md" in {s.rfilename for s in model.siblings or []}
    assert not model.card_data
    # A fixed card clears the error.
    monkeypatch.undo()
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\n# Fixed\n", path_in_repo="README.md",
                    repo_id=repo_id)
    fixed = httpx.get(f"{server.url}/api/models/{repo_id}", headers=_auth(owner[1]), timeout=30).json()
    assert "cardError" not in fixed
    assert fixed["cardData"] == {"license": "mit"}


def test_single_pass_blob_upload_endpoint(server, owner, repo_id) -> None:  # type: ignore[no-untyped-def]
    """POST /api/models/{repo}/blobs hashes while streaming; a wrong size stores nothing."""
    import hashlib as _hashlib

    import httpx as _httpx

    _, token = owner
    url = f"{server.url}/api/models/{repo_id}/blobs"
    auth = {"Authorization": f"Bearer {token}"}
    data = b"\x00\x01single-pass" * 1000
    ok = _httpx.post(url, params={"size": len(data)}, content=data, headers=auth, timeout=30)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"oid": _hashlib.sha256(data).hexdigest(), "size": len(data)}

    other = b"never stored" * 100
    wrong = _httpx.post(url, params={"size": len(other) + 1}, content=other, headers=auth, timeout=30)
    assert wrong.status_code == 400 and wrong.headers["X-Error-Code"] == "ChecksumMismatch"
    assert not list(server.data_dir.glob(f"blobs/*/*/{_hashlib.sha256(other).hexdigest()}"))

    anonymous = _httpx.post(url, params={"size": len(data)}, content=data, timeout=30)
    assert anonymous.status_code == 401


def _commit_lfs(server, token: str, repo_id: str, path: str, oid: str, size: int) -> httpx.Response:
    lines = [{"key": "header", "value": {"summary": "name a blob"}},
             {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": size}}]
    return httpx.post(f"{server.url}/api/models/{repo_id}/commit/main", headers=_auth(token), timeout=30,
                      content=b"\n".join(json.dumps(line).encode() for line in lines))


def test_blob_upload_with_a_declared_sha256(server, owner, repo_id) -> None:  # type: ignore[no-untyped-def]
    """`POST .../blobs?sha256=` (what push sends when it hashed a changed file anyway): the right
    bytes are stored and committable; other bytes, or a malformed hash, answer 400 and store and
    claim nothing, so a commit naming the declared hash is refused."""
    _, token = owner
    url = f"{server.url}/api/models/{repo_id}/blobs"
    store = server.blob_store()
    data = b"declared and right" * 4096
    right = hashlib.sha256(data).hexdigest()
    ok = httpx.post(url, params={"size": len(data), "sha256": right}, content=data, headers=_auth(token), timeout=30)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"oid": right, "size": len(data)}
    assert _commit_lfs(server, token, repo_id, "right.bin", right, len(data)).status_code == 200
    assert _read(server, repo_id, "right.bin", token=token) == data

    # The client claims the hash of bytes it never sent: the server's own hash decides.
    claimed = hashlib.sha256(b"content the client never sent" * 1000).hexdigest()
    other = b"other bytes of the same size".ljust(len(b"content the client never sent" * 1000), b"!")
    wrong = httpx.post(url, params={"size": len(other), "sha256": claimed}, content=other, headers=_auth(token),
                       timeout=30)
    assert wrong.status_code == 400 and wrong.headers["X-Error-Code"] == "ChecksumMismatch", wrong.text
    assert claimed in wrong.headers["X-Error-Message"]
    assert not store.exists(claimed) and not store.exists(hashlib.sha256(other).hexdigest())
    refused = _commit_lfs(server, token, repo_id, "claimed.bin", claimed, len(other))
    assert refused.status_code == 400, refused.text
    # Nor may the bytes that were sent be named: they were discarded with their claim.
    assert _commit_lfs(server, token, repo_id, "other.bin", hashlib.sha256(other).hexdigest(),
                       len(other)).status_code == 400

    for bad in ("ABC", "g" * 64, right.upper()):
        malformed = httpx.post(url, params={"size": len(data), "sha256": bad}, content=data, headers=_auth(token),
                               timeout=30)
        assert malformed.status_code in (400, 422), (bad, malformed.text)


def test_truncated_blob_upload_stores_nothing(server, owner, repo_id) -> None:  # type: ignore[no-untyped-def]
    """A body that ends before its Content-Length (the connection closes) is discarded: nothing is
    stored and nothing can be committed, whether or not the client declared the sha256."""
    import socket
    from urllib.parse import urlsplit

    _, token = owner
    whole = os.urandom(3 * 1024 * 1024)
    sha = hashlib.sha256(whole).hexdigest()
    address = urlsplit(server.url)
    for query in (f"size={len(whole)}", f"size={len(whole)}&sha256={sha}"):
        with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
            sock.sendall((f"POST /api/models/{repo_id}/blobs?{query} HTTP/1.1\r\nHost: {address.netloc}\r\n"
                          f"Authorization: Bearer {token}\r\nContent-Length: {len(whole)}\r\n\r\n").encode())
            sock.sendall(whole[: len(whole) // 2])
            sock.shutdown(socket.SHUT_WR)
            sock.recv(65536)  # the server's answer, or the close
    # A later upload of the whole file works, so the server finished with the cut one.
    ok = httpx.post(f"{server.url}/api/models/{repo_id}/blobs", params={"size": 5}, content=b"after",
                    headers=_auth(token), timeout=30)
    assert ok.status_code == 200
    assert not server.blob_store().exists(sha)
    assert not server.blob_store().exists(hashlib.sha256(whole[: len(whole) // 2]).hexdigest())
    assert _commit_lfs(server, token, repo_id, "cut.bin", sha, len(whole)).status_code == 400


def test_delete_repo(server, api, repo_id) -> None:  # type: ignore[no-untyped-def]
    """Only an admin of the namespace deletes; a stranger sees nothing; afterwards the repo is gone."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    _, stranger_token = server.user()
    with pytest.raises(HfHubHTTPError) as denied:
        HfApi(endpoint=server.url, token=stranger_token).delete_repo(repo_id)
    assert denied.value.response.status_code == 403
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server.url, token=stranger_token).delete_repo(f"{repo_id}-missing")
    api.delete_repo(repo_id)
    assert not api.repo_exists(repo_id)


def test_expand_gives_each_entry_its_last_commit(api: HfApi, repo_id: str) -> None:
    first = api.create_commit(repo_id, [CommitOperationAdd("a.txt", b"a"), CommitOperationAdd("d/b.txt", b"b")],
                              commit_message="first")
    second = api.create_commit(repo_id, [CommitOperationAdd("d/c.txt", b"c")], commit_message="second")
    entries = {e.path: e for e in api.list_repo_tree(repo_id, expand=True)}
    assert entries["a.txt"].last_commit.oid == first.oid and entries["a.txt"].last_commit.title == "first"
    assert entries["d"].last_commit.oid == second.oid
    infos = {e.path: e for e in api.get_paths_info(repo_id, ["a.txt", "d/c.txt"], expand=True)}
    assert infos["d/c.txt"].last_commit.oid == second.oid and infos["a.txt"].last_commit.oid == first.oid


def test_preupload_follows_the_repos_gitignore_and_gitattributes(api: HfApi, repo_id: str, tmp_path: Path) -> None:
    """As on the Hub (issue 12): a .gitignore in the commit (or else the repo's) leaves files out, and the
    repo's .gitattributes LFS patterns send matching files through LFS."""
    attributes = api.hf_hub_download(repo_id, ".gitattributes", local_dir=tmp_path / "attrs")
    text = Path(attributes).read_text() + "*.custom filter=lfs diff=lfs merge=lfs -text\n"
    api.upload_file(path_or_fileobj=text.encode(), path_in_repo=".gitattributes", repo_id=repo_id)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / ".gitignore").write_text("*.log\ncache/\n")
    (folder / "run.log").write_text("noise\n")
    (folder / "cache").mkdir()
    (folder / "cache" / "x.txt").write_text("cached\n")
    (folder / "table.custom").write_text("small text, but LFS by the repo's own rule\n")
    (folder / "notes.txt").write_text("kept\n")
    api.upload_folder(folder_path=str(folder), repo_id=repo_id)
    assert _files(api, repo_id) == {".gitattributes", ".gitignore", "table.custom", "notes.txt"}
    entries = {e.path: e for e in api.list_repo_tree(repo_id)}
    assert entries["table.custom"].lfs is not None and entries["notes.txt"].lfs is None
    # The repo's .gitignore now applies to a later commit that does not carry one.
    later = tmp_path / "later"
    later.mkdir()
    (later / "other.log").write_text("noise\n")
    (later / "kept.md").write_text("kept\n")
    api.upload_folder(folder_path=str(later), repo_id=repo_id)
    assert _files(api, repo_id) == {".gitattributes", ".gitignore", "table.custom", "notes.txt", "kept.md"}
