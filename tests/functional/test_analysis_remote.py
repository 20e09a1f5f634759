"""Reading weights metadata from a real releasehub server over HTTP ranges.

The repo is uploaded with the unchanged `huggingface_hub` client; `HubSnapshot` then reads it
the way it reads huggingface.co, and must learn the same thing as from the local copy while
fetching only the headers: two ranged requests per shard.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from huggingface_hub import HfApi
from safetensors.numpy import save_file

from releasehub.analysis.readers import AnalysisError
from releasehub.analysis.readers.safetensors import prefetch_bytes
from releasehub.analysis.snapshot import HubSnapshot, LocalDirSnapshot, load_weights

SHARDS: dict[str, dict[str, np.ndarray[Any, Any]]] = {
    "model-00001-of-00002.safetensors": {
        "model.embed_tokens.weight": np.zeros((512, 64), np.float16),
        "model.layers.0.self_attn.q_proj.weight": np.zeros((64, 64), np.float16),
    },
    "model-00002-of-00002.safetensors": {
        "model.layers.0.mlp.up_proj.weight": np.zeros((256, 64), np.float16),
        "model.norm.weight": np.zeros((64,), np.float32),
    },
}


def release(folder: Path) -> Path:
    """A sharded checkpoint with its index, a config.json and a card."""
    folder.mkdir()
    weight_map: dict[str, str] = {}
    for shard, tensors in SHARDS.items():
        save_file(tensors, str(folder / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, shard))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# Tiny\n")
    return folder


def upload(api: HfApi, repo_id: str, folder: Path) -> None:
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="release")


def test_hub_snapshot_reads_only_the_headers(server: Any, api: HfApi, repo_id: str, tmp_path: Path) -> None:
    folder = release(tmp_path / "release")
    upload(api, repo_id, folder)
    local = load_weights(LocalDirSnapshot(folder))
    assert local is not None

    with HubSnapshot(server.url, repo_id) as snapshot:
        assert snapshot.revision == api.model_info(repo_id).sha
        files = snapshot.files()
        assert {path: files[path] for path in LocalDirSnapshot(folder).files()} == LocalDirSnapshot(folder).files()
        assert snapshot.read_text("config.json") == (folder / "config.json").read_text()
        done: list[tuple[int, int]] = []
        remote = load_weights(snapshot, progress=lambda d, t: done.append((d, t)))

    assert remote == local
    assert remote.parameters == 512 * 64 + 64 * 64 + 256 * 64 + 64
    assert remote.files == tuple(SHARDS)
    assert done == [(1, 2), (2, 2)]
    # One ranged read per shard: the length and the whole header arrive in the first 4 KiB.
    assert snapshot.stats.requests == len(SHARDS)
    assert remote.header_bytes == sum(
        8 + int.from_bytes((folder / shard).read_bytes()[:8], "little") for shard in SHARDS)
    assert snapshot.stats.bytes == sum(prefetch_bytes((folder / shard).stat().st_size) for shard in SHARDS)
    assert remote.header_bytes <= snapshot.stats.bytes <= 4096 * len(SHARDS)


def test_revisions_are_pinned_and_checked(server: Any, api: HfApi, repo_id: str, tmp_path: Path) -> None:
    upload(api, repo_id, release(tmp_path / "release"))
    first = api.model_info(repo_id).sha
    api.create_tag(repo_id, tag="v1")
    api.upload_file(path_or_fileobj=b"more", path_in_repo="extra.txt", repo_id=repo_id)
    with HubSnapshot(server.url, repo_id, revision="v1") as tagged:
        assert tagged.revision == first and "extra.txt" not in tagged.files()
    with HubSnapshot(server.url, repo_id) as head:
        assert head.revision != first and "extra.txt" in head.files()
    with pytest.raises(AnalysisError, match=r"revision does not exist.*\(404\)"):
        HubSnapshot(server.url, repo_id, revision="no-such-branch")


def test_gated_repo_without_access_quotes_the_server(server: Any, api: HfApi, repo_id: str,
                                                     tmp_path: Path) -> None:
    upload(api, repo_id, release(tmp_path / "release"))
    api.update_repo_settings(repo_id, gated="manual")

    # The file list stays public; the first file behind the gate stops the analysis.
    with HubSnapshot(server.url, repo_id) as anonymous:
        assert "model-00001-of-00002.safetensors" in anonymous.files()
        with pytest.raises(AnalysisError) as error:
            load_weights(anonymous)
    message = str(error.value)
    assert "gated (401)" in message and f"{server.url}/{repo_id}" in message
    assert f"Access to model {repo_id} is restricted" in message  # the server's own words

    _, stranger = server.user()
    with HubSnapshot(server.url, repo_id, token=stranger) as signed, pytest.raises(AnalysisError) as error:
        load_weights(signed)
    assert "gated (403)" in str(error.value) and "not in the authorized list" in str(error.value)
    assert "releasehub access request" in str(error.value)


def test_private_repo_needs_a_token(server: Any, api: HfApi, repo_id: str, owner: tuple[str, str],
                                   tmp_path: Path) -> None:
    upload(api, repo_id, release(tmp_path / "release"))
    api.update_repo_settings(repo_id, private=True)
    with pytest.raises(AnalysisError, match=r"private and needs a token.*401.*Repository .* not found"):
        HubSnapshot(server.url, repo_id)
    with HubSnapshot(server.url, repo_id, token=owner[1]) as snapshot:
        summary = load_weights(snapshot)
    assert summary is not None and summary.tensors == 4


def test_missing_repo_is_a_clear_404(server: Any, owner: tuple[str, str]) -> None:
    missing = f"{owner[0]}/nothing-{uuid.uuid4().hex[:6]}"
    with pytest.raises(AnalysisError) as error:
        HubSnapshot(server.url, missing, token=owner[1])
    assert "does not exist" in str(error.value) and "404" in str(error.value)
    assert f"Repository {missing} not found" in str(error.value)
