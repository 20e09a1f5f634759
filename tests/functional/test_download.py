"""Reading a repo with the unchanged `huggingface_hub` client: downloads, snapshots, metadata, listings.

One published repo per backend (module scope) holds a small model at three revisions:

    v1 (tag) == first upload      README.md, config.json, model.safetensors, weights/extra.bin,
                                  sub/dir/notes.txt (+ .gitattributes from repo creation)
    dev (branch) = v1 + dev-only.txt
    main = v1 + new.txt, with config.json changed

The tests only read it; each one downloads into its own cache directory.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import pooled_server
from huggingface_hub import (
    HfApi,
    HfFileSystem,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder
from safetensors.numpy import save_file


@pytest.fixture(scope="module", params=["sqlite", "postgres", "s3"])
def server(request: pytest.FixtureRequest, _server_pool, tmp_path_factory):  # type: ignore[no-untyped-def]
    """This module also runs on blobs in a real S3-compatible store (SQLite + SeaweedFS)."""
    return pooled_server(str(request.param), _server_pool, tmp_path_factory, request)

README = "---\nlicense: mit\ntags:\n- tiny\n- test\n---\n# Tiny model\n\nFor tests.\n"
CONFIG_V1 = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 8}
CONFIG_V2 = {**CONFIG_V1, "hidden_size": 16}
EXTRA_BIN = bytes(range(256)) * 12  # 3072 bytes, goes through LFS (*.bin)
NOTES = "nested notes\n"
DEV_ONLY = "only on dev\n"
NEW_TXT = "added on main after v1\n"

TENSORS = {
    "embed.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
    "norm.weight": np.ones(4, dtype=np.float32),
    "positions": np.arange(5, dtype=np.int64),
    "head.weight": np.zeros((2, 2), dtype=np.float16),
}


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Published:
    url: str
    token: str
    repo_id: str
    files_v1: dict[str, bytes]  # every file at v1, .gitattributes included
    files_main: dict[str, bytes]
    files_dev: dict[str, bytes]
    sha_v1: str
    sha_dev: str
    sha_main: str
    sha_initial: str

    @property
    def api(self) -> HfApi:
        return HfApi(endpoint=self.url, token=self.token)


@pytest.fixture(scope="module")
def published(server: Any, tmp_path_factory: pytest.TempPathFactory) -> Published:
    user, token = server.user()
    api = HfApi(endpoint=server.url, token=token)
    repo_id = f"{user}/tiny-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    sha_initial = api.model_info(repo_id).sha
    gitattributes = hf_hub_download(repo_id, ".gitattributes", endpoint=server.url, token=token,
                                    cache_dir=str(tmp_path_factory.mktemp("ga-cache")))

    folder = tmp_path_factory.mktemp("published")
    (folder / "README.md").write_text(README)
    (folder / "config.json").write_text(json.dumps(CONFIG_V1))
    save_file(TENSORS, str(folder / "model.safetensors"), metadata={"format": "np"})
    (folder / "weights").mkdir()
    (folder / "weights" / "extra.bin").write_bytes(EXTRA_BIN)
    (folder / "sub" / "dir").mkdir(parents=True)
    (folder / "sub" / "dir" / "notes.txt").write_text(NOTES)
    v1 = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="v1 upload")
    sha_v1 = v1.oid
    api.create_tag(repo_id, tag="v1", revision=sha_v1)

    api.create_branch(repo_id, branch="dev", revision=sha_v1)
    dev = api.upload_file(path_or_fileobj=DEV_ONLY.encode(), path_in_repo="dev-only.txt", repo_id=repo_id,
                          revision="dev", commit_message="dev file")

    (folder / "config.json").write_text(json.dumps(CONFIG_V2))
    (folder / "new.txt").write_text(NEW_TXT)
    main = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="v2 upload")

    files_v1 = {
        ".gitattributes": Path(gitattributes).read_bytes(),
        "README.md": README.encode(),
        "config.json": json.dumps(CONFIG_V1).encode(),
        "model.safetensors": (folder / "model.safetensors").read_bytes(),
        "weights/extra.bin": EXTRA_BIN,
        "sub/dir/notes.txt": NOTES.encode(),
    }
    files_main = {**files_v1, "config.json": json.dumps(CONFIG_V2).encode(), "new.txt": NEW_TXT.encode()}
    files_dev = {**files_v1, "dev-only.txt": DEV_ONLY.encode()}
    return Published(server.url, token, repo_id, files_v1, files_main, files_dev, sha_v1, dev.oid, main.oid,
                     sha_initial)


def snapshot_files(root: str | Path) -> dict[str, bytes]:
    """Every file below a snapshot folder (following the cache's symlinks), by relative path."""
    root = Path(root)
    out = {}
    for path in root.rglob("*"):
        if path.is_file():
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


# ---------------------------------------------------------------- downloads


def test_hf_hub_download_and_cache_layout(published: Published, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for filename in ("config.json", "model.safetensors", "sub/dir/notes.txt"):
        path = hf_hub_download(published.repo_id, filename, endpoint=published.url, token=published.token,
                               cache_dir=str(cache))
        assert Path(path).read_bytes() == published.files_main[filename]

    owner, name = published.repo_id.split("/")
    repo_cache = cache / f"models--{owner}--{name}"
    assert (repo_cache / "refs" / "main").read_text() == published.sha_main
    snapshot = repo_cache / "snapshots" / published.sha_main
    assert snapshot_files(snapshot) == {
        f: published.files_main[f] for f in ("config.json", "model.safetensors", "sub/dir/notes.txt")
    }
    # Blobs are named by their ETag: sha256 for LFS files, the git blob sha1 for regular ones.
    blobs = {p.name for p in (repo_cache / "blobs").iterdir()}
    assert blobs == {
        git_blob_sha1(published.files_main["config.json"]),
        sha256(published.files_main["model.safetensors"]),
        git_blob_sha1(published.files_main["sub/dir/notes.txt"]),
    }
    link = snapshot / "model.safetensors"
    assert link.is_symlink()
    blob = repo_cache / "blobs" / sha256(published.files_main["model.safetensors"])
    assert link.resolve() == blob.resolve()

    # A second call is answered from the cache, and a download at the tag lands in the v1 snapshot.
    again = hf_hub_download(published.repo_id, "config.json", endpoint=published.url, token=published.token,
                            cache_dir=str(cache))
    assert Path(again) == snapshot / "config.json"
    old = hf_hub_download(published.repo_id, "config.json", revision="v1", endpoint=published.url,
                          token=published.token, cache_dir=str(cache))
    assert Path(old) == repo_cache / "snapshots" / published.sha_v1 / "config.json"
    assert json.loads(Path(old).read_text()) == CONFIG_V1
    assert (repo_cache / "refs" / "v1").read_text() == published.sha_v1

    # Offline, the cache alone answers.
    offline = hf_hub_download(published.repo_id, "config.json", endpoint=published.url, cache_dir=str(cache),
                              local_files_only=True)
    assert Path(offline) == snapshot / "config.json"


def test_hf_hub_download_to_local_dir(published: Published, tmp_path: Path) -> None:
    target = tmp_path / "local"
    path = hf_hub_download(published.repo_id, "weights/extra.bin", endpoint=published.url,
                           token=published.token, local_dir=str(target))
    assert Path(path) == target / "weights" / "extra.bin"
    assert Path(path).read_bytes() == EXTRA_BIN


@pytest.mark.parametrize(
    "revision, expected",
    [
        (None, "files_main"),
        ("main", "files_main"),
        ("dev", "files_dev"),
        ("v1", "files_v1"),
        ("sha_v1", "files_v1"),
        ("sha_dev", "files_dev"),
    ],
)
def test_snapshot_download(published: Published, tmp_path: Path, revision: str | None, expected: str) -> None:
    if revision is not None and revision.startswith("sha_"):
        revision = getattr(published, revision)
    folder = snapshot_download(published.repo_id, revision=revision, endpoint=published.url,
                               token=published.token, cache_dir=str(tmp_path / "cache"))
    assert snapshot_files(folder) == getattr(published, expected)
    expected_sha = {"files_main": published.sha_main, "files_dev": published.sha_dev,
                    "files_v1": published.sha_v1}[expected]
    assert Path(folder).name == expected_sha


def test_snapshot_download_allow_patterns(published: Published, tmp_path: Path) -> None:
    folder = snapshot_download(published.repo_id, allow_patterns=["*.json", "sub/*"], endpoint=published.url,
                               token=published.token, cache_dir=str(tmp_path / "cache"))
    assert snapshot_files(folder) == {
        "config.json": published.files_main["config.json"],
        "sub/dir/notes.txt": published.files_main["sub/dir/notes.txt"],
    }
    folder = snapshot_download(published.repo_id, ignore_patterns=["*.safetensors", "*.bin", "sub/*"],
                               endpoint=published.url, token=published.token,
                               local_dir=str(tmp_path / "local"))
    assert set(snapshot_files(folder)) - {p for p in snapshot_files(folder) if p.startswith(".cache/")} == {
        ".gitattributes", "README.md", "config.json", "new.txt"
    }


def test_range_get_returns_206(published: Published) -> None:
    url = f"{published.url}/{published.repo_id}/resolve/main/weights/extra.bin"
    headers = {"Authorization": f"Bearer {published.token}", "Range": "bytes=100-199"}
    # Following the redirect where the blobs are in an object store (httpx drops the token there).
    response = httpx.get(url, headers=headers, follow_redirects=True)
    assert response.status_code == 206
    assert response.content == EXTRA_BIN[100:200]
    assert response.headers["content-range"] == f"bytes 100-199/{len(EXTRA_BIN)}"
    assert response.headers["content-length"] == "100"
    # Suffix range, and a range on a regular (non-LFS) file.
    tail = httpx.get(url, headers={"Range": "bytes=-10"}, follow_redirects=True)
    assert tail.status_code == 206
    assert tail.content == EXTRA_BIN[-10:]
    notes = httpx.get(f"{published.url}/{published.repo_id}/resolve/main/sub/dir/notes.txt",
                      headers={"Range": "bytes=0-5"})
    assert notes.status_code == 206
    assert notes.content == NOTES.encode()[:6]


# ---------------------------------------------------------------- metadata


def test_model_info(published: Published) -> None:
    info = published.api.model_info(published.repo_id)
    assert info.id == published.repo_id
    assert info.sha == published.sha_main
    assert info.private is False
    assert {s.rfilename for s in info.siblings} == set(published.files_main)
    assert info.card_data is not None
    assert info.card_data["license"] == "mit"
    assert info.card_data["tags"] == ["tiny", "test"]
    assert "license:mit" in info.tags

    at_tag = published.api.model_info(published.repo_id, revision="v1")
    assert at_tag.sha == published.sha_v1
    assert {s.rfilename for s in at_tag.siblings} == set(published.files_v1)


def test_model_info_files_metadata(published: Published) -> None:
    info = published.api.model_info(published.repo_id, files_metadata=True)
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == set(published.files_main)
    for path, content in published.files_main.items():
        sibling = siblings[path]
        assert sibling.size == len(content), path
        lfs = path.endswith((".safetensors", ".bin"))
        if lfs:
            assert sibling.lfs is not None, path
            assert sibling.lfs.sha256 == sha256(content)
            assert sibling.lfs.size == len(content)
            pointer = (f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256(content)}\n"
                       f"size {len(content)}\n").encode()
            assert sibling.lfs.pointer_size == len(pointer)
            assert sibling.blob_id == git_blob_sha1(pointer)
        else:
            assert sibling.lfs is None, path
            assert sibling.blob_id == git_blob_sha1(content), path


def test_list_repo_files(published: Published) -> None:
    assert sorted(published.api.list_repo_files(published.repo_id)) == sorted(published.files_main)
    dev = published.api.list_repo_files(published.repo_id, revision="dev")
    assert sorted(dev) == sorted(published.files_dev)
    assert sorted(published.api.list_repo_files(published.repo_id, revision=published.sha_v1)) == sorted(
        published.files_v1
    )


def test_list_repo_tree(published: Published) -> None:
    api = published.api
    root = {e.path: e for e in api.list_repo_tree(published.repo_id)}
    assert set(root) == {".gitattributes", "README.md", "config.json", "model.safetensors", "new.txt",
                         "weights", "sub"}
    assert isinstance(root["weights"], RepoFolder)
    assert isinstance(root["sub"], RepoFolder)
    config = root["config.json"]
    assert isinstance(config, RepoFile)
    assert config.size == len(published.files_main["config.json"])
    assert config.blob_id == git_blob_sha1(published.files_main["config.json"])
    assert config.lfs is None
    model = root["model.safetensors"]
    assert isinstance(model, RepoFile)
    assert model.lfs is not None
    assert model.lfs.sha256 == sha256(published.files_main["model.safetensors"])
    assert model.size == len(published.files_main["model.safetensors"])

    recursive = {e.path: type(e) for e in api.list_repo_tree(published.repo_id, recursive=True)}
    assert recursive == {
        **{p: RepoFile for p in published.files_main},
        "weights": RepoFolder, "sub": RepoFolder, "sub/dir": RepoFolder,
    }

    sub = {e.path: type(e) for e in api.list_repo_tree(published.repo_id, path_in_repo="sub")}
    assert sub == {"sub/dir": RepoFolder}
    sub_recursive = {e.path: type(e) for e in api.list_repo_tree(published.repo_id, path_in_repo="sub",
                                                                   recursive=True)}
    assert sub_recursive == {"sub/dir": RepoFolder, "sub/dir/notes.txt": RepoFile}
    nested = list(api.list_repo_tree(published.repo_id, path_in_repo="sub/dir"))
    assert [(e.path, type(e)) for e in nested] == [("sub/dir/notes.txt", RepoFile)]

    dev_root = {e.path for e in api.list_repo_tree(published.repo_id, revision="dev")}
    assert "dev-only.txt" in dev_root and "new.txt" not in dev_root


def test_list_repo_refs(published: Published) -> None:
    refs = published.api.list_repo_refs(published.repo_id)
    branches = {b.name: (b.ref, b.target_commit) for b in refs.branches}
    assert branches == {
        "main": ("refs/heads/main", published.sha_main),
        "dev": ("refs/heads/dev", published.sha_dev),
    }
    assert {t.name: (t.ref, t.target_commit) for t in refs.tags} == {"v1": ("refs/tags/v1", published.sha_v1)}


def test_list_repo_commits(published: Published) -> None:
    commits = published.api.list_repo_commits(published.repo_id)
    assert [c.commit_id for c in commits] == [published.sha_main, published.sha_v1, published.sha_initial]
    assert [c.title for c in commits] == ["v2 upload", "v1 upload", "initial commit"]
    owner = published.repo_id.split("/")[0]
    assert commits[0].authors == [owner]
    assert commits[0].created_at >= commits[1].created_at

    dev = published.api.list_repo_commits(published.repo_id, revision="dev")
    assert [c.commit_id for c in dev] == [published.sha_dev, published.sha_v1, published.sha_initial]


def test_get_paths_info(published: Published) -> None:
    infos = published.api.get_paths_info(published.repo_id, ["config.json", "model.safetensors", "sub",
                                                             "missing.txt"])
    by_path = {i.path: i for i in infos}
    assert set(by_path) == {"config.json", "model.safetensors", "sub"}
    config = by_path["config.json"]
    assert isinstance(config, RepoFile)
    assert config.size == len(published.files_main["config.json"])
    assert config.blob_id == git_blob_sha1(published.files_main["config.json"])
    model = by_path["model.safetensors"]
    assert isinstance(model, RepoFile)
    assert model.lfs is not None and model.lfs.sha256 == sha256(published.files_main["model.safetensors"])
    assert isinstance(by_path["sub"], RepoFolder)

    old = published.api.get_paths_info(published.repo_id, "config.json", revision="v1")
    old_blob = git_blob_sha1(published.files_v1["config.json"])
    assert [(i.path, i.blob_id) for i in old] == [("config.json", old_blob)]


def test_exists_helpers(published: Published) -> None:
    api = published.api
    assert api.repo_exists(published.repo_id)
    assert not api.repo_exists(f"{published.repo_id.split('/')[0]}/does-not-exist-{uuid.uuid4().hex[:6]}")
    assert api.file_exists(published.repo_id, "config.json")
    assert api.file_exists(published.repo_id, "sub/dir/notes.txt")
    assert not api.file_exists(published.repo_id, "missing.txt")
    assert not api.file_exists(published.repo_id, "dev-only.txt")
    assert api.file_exists(published.repo_id, "dev-only.txt", revision="dev")
    assert not api.file_exists(published.repo_id, "new.txt", revision="v1")
    assert api.revision_exists(published.repo_id, "main")
    assert api.revision_exists(published.repo_id, "dev")
    assert api.revision_exists(published.repo_id, "v1")
    assert api.revision_exists(published.repo_id, published.sha_v1)
    assert not api.revision_exists(published.repo_id, "nope")
    assert not api.revision_exists(published.repo_id, "0" * 40)


def test_get_hf_file_metadata(published: Published) -> None:
    def metadata(filename: str, revision: str | None = None):  # type: ignore[no-untyped-def]
        url = hf_hub_url(published.repo_id, filename, revision=revision, endpoint=published.url)
        return get_hf_file_metadata(url, token=published.token, endpoint=published.url)

    model = metadata("model.safetensors")
    content = published.files_main["model.safetensors"]
    assert model.etag == sha256(content)
    assert model.size == len(content)
    assert model.commit_hash == published.sha_main

    config = metadata("config.json")
    assert config.etag == git_blob_sha1(published.files_main["config.json"])
    assert config.size == len(published.files_main["config.json"])
    assert config.commit_hash == published.sha_main

    old = metadata("config.json", revision="v1")
    assert old.etag == git_blob_sha1(published.files_v1["config.json"])
    assert old.commit_hash == published.sha_v1

    extra = metadata("weights/extra.bin", revision="dev")
    assert extra.etag == sha256(EXTRA_BIN)
    assert extra.size == len(EXTRA_BIN)
    assert extra.commit_hash == published.sha_dev


def test_get_safetensors_metadata(published: Published) -> None:
    meta = published.api.get_safetensors_metadata(published.repo_id)
    assert meta.sharded is False
    assert meta.weight_map == {name: "model.safetensors" for name in TENSORS}
    assert meta.parameter_count == {"F32": 10, "I64": 5, "F16": 4}
    file_meta = meta.files_metadata["model.safetensors"]
    assert file_meta.metadata == {"format": "np"}
    assert file_meta.tensors["embed.weight"].dtype == "F32"
    assert file_meta.tensors["embed.weight"].shape == [2, 3]
    assert file_meta.tensors["positions"].dtype == "I64"
    assert file_meta.tensors["head.weight"].shape == [2, 2]


# ---------------------------------------------------------------- HfFileSystem


def test_hf_file_system(published: Published) -> None:
    fs = HfFileSystem(endpoint=published.url, token=published.token, skip_instance_cache=True)
    rid = published.repo_id
    top = set(fs.ls(rid, detail=False))
    assert top == {f"{rid}/{p}" for p in (".gitattributes", "README.md", "config.json", "model.safetensors",
                                            "new.txt", "weights", "sub")}
    details = {e["name"]: e for e in fs.ls(rid, detail=True)}
    assert details[f"{rid}/weights"]["type"] == "directory"
    assert details[f"{rid}/config.json"]["type"] == "file"
    assert details[f"{rid}/config.json"]["size"] == len(published.files_main["config.json"])

    with fs.open(f"{rid}/weights/extra.bin", "rb") as f:
        f.seek(1000)
        assert f.read(50) == EXTRA_BIN[1000:1050]
    model = published.files_main["model.safetensors"]
    assert fs.cat_file(f"{rid}/model.safetensors", start=8, end=40) == model[8:40]
    assert fs.read_text(f"{rid}/sub/dir/notes.txt") == NOTES

    assert set(fs.glob(f"{rid}/**/*.txt")) == {f"{rid}/new.txt", f"{rid}/sub/dir/notes.txt"}
    assert set(fs.glob(f"{rid}/*.json")) == {f"{rid}/config.json"}
    assert set(fs.glob(f"{rid}@dev/*.txt")) == {f"{rid}@dev/dev-only.txt"}
    assert fs.read_text(f"{rid}@v1/config.json") == json.dumps(CONFIG_V1)
    assert fs.exists(f"{rid}/sub/dir")
    assert not fs.exists(f"{rid}/missing.txt")
    assert fs.info(f"{rid}/model.safetensors")["lfs"]["sha256"] == sha256(model)
