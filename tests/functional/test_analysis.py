"""The access profile end to end: `releasehub analyze/compare/paper` as subprocesses, and the server route.

The models are generated here (the demo's tiny Llama, a GGUF file written with the `gguf`
package); nothing is downloaded. The server route is exercised with gates, stages and a
grant to check that a profile never reads what the caller may not see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from huggingface_hub import HfApi

from releasehub.analysis.models import CachedProfile
from releasehub.demo import build_tiny_model


def run(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    full_env.pop("HF_ENDPOINT", None) if env is None or "HF_ENDPOINT" not in env else None
    done = subprocess.run([sys.executable, "-m", "releasehub", *args], capture_output=True, text=True,
                          env=full_env, timeout=180)
    if check:
        assert done.returncode == 0, done.stderr + done.stdout
    return done


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_model(folder)
    return folder


def tiny_parameters(folder: Path) -> int:
    from safetensors.numpy import load_file

    return sum(int(t.size) for t in load_file(str(folder / "model.safetensors")).values())


def test_analyze_a_local_directory_as_json(tiny: Path) -> None:
    profile = json.loads(run("analyze", str(tiny), "--format", "json", "--context", "64").stdout)
    config = json.loads((tiny / "config.json").read_text())
    total = tiny_parameters(tiny)
    assert profile["parameters"]["total"] == profile["parameters"]["active"] == total
    assert profile["parameters"]["source"] == "weights"
    assert profile["parameters"]["from_config"] == total  # config.json alone gives the same count
    weights = profile["resourcing"]["weights_bytes"]
    assert weights == {"fp32": 4 * total, "bf16": 2 * total, "fp16": 2 * total, "fp8": total, "int8": total,
                       "int4": (total + 1) // 2, "published": 4 * total}
    kv = profile["resourcing"]["kv_cache"]
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    per_token = 2 * config["num_hidden_layers"] * config["num_key_value_heads"] * head_dim * 2
    assert kv["bytes_per_token"] == per_token and kv["bytes"] == 64 * per_token and kv["context"] == 64
    gpus = {g["gpu"]: g for g in profile["resourcing"]["gpus"]}
    assert gpus["h100-80gb"]["by_memory"] == gpus["h100-80gb"]["deployable"] == 1
    assert all(isinstance(g["by_memory"], int) for g in gpus.values())
    assert profile["reading"]["format"] == "safetensors" and profile["reading"]["files"] == 1
    # The demo card says apache-2.0 and ships weights, config and card, but no data card or eval results.
    assert profile["openness"]["mof_class"] is None
    assert profile["openness"]["osi"]["verdict"] in ("does not meet", "cannot tell")
    assert profile["usability"]["license"]["id"] == "apache-2.0"


def test_analyze_a_config_file_and_a_gguf_file(tmp_path: Path) -> None:
    import gguf

    config = {"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100, "tie_word_embeddings": True,
              "max_position_embeddings": 2048}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    profile = json.loads(run("analyze", str(path), "--format", "json").stdout)
    # embed 6,400 + per layer (q 64x64+64, k,v 64x32+32 each, o 64x64, mlp 3x64x128, 2 norms) + final norm
    layer = 64 * 64 + 64 + 2 * (64 * 32 + 32) + 64 * 64 + 3 * 64 * 128 + 2 * 64
    assert profile["parameters"]["total"] == 6400 + 2 * layer + 64
    assert profile["parameters"]["source"] == "config" and profile["resourcing"]["kv_cache"]["context"] == 2048

    gguf_path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(gguf_path), "llama")
    writer.add_block_count(2)
    writer.add_context_length(4096)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_token_list([f"t{i}".encode() for i in range(100)])
    tensors = {"token_embd.weight": (100, 64), "output.weight": (100, 64), "blk.0.attn_q.weight": (64, 64),
               "blk.1.attn_q.weight": (64, 64)}
    for name, shape in tensors.items():
        writer.add_tensor(name, np.zeros(shape, dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    profile = json.loads(run("analyze", str(gguf_path), "--format", "json").stdout)
    assert profile["reading"]["format"] == "gguf"
    assert profile["parameters"]["total"] == sum(a * b for a, b in tensors.values())
    assert profile["architecture"]["layers"] == 2 and profile["architecture"]["attention"]["kv_heads"] == 2
    assert profile["resourcing"]["kv_cache"]["bytes_per_token"] == 2 * 2 * 2 * 16 * 2


def test_catalogue_profile_formats_and_charts(tmp_path: Path) -> None:
    profile = json.loads(run("analyze", "deepseek-v3", "--format", "json", "--gpu", "h200").stdout)
    assert profile["parameters"]["active"] < profile["parameters"]["total"]
    assert profile["architecture"]["attention"]["kind"] == "mla"
    assert profile["resourcing"]["kv_cache"]["bytes_per_token"] == 61 * (512 + 64) * 2
    assert [g["gpu"] for g in profile["resourcing"]["gpus"]] == ["h200-141gb"]
    markdown = run("analyze", "qwen3-8b", "--format", "markdown").stdout
    assert markdown.startswith("# Access profile: Qwen3 8B") and "| fp8 |" in markdown
    html = run("analyze", "qwen3-8b", "--format", "html").stdout
    assert html.startswith("<!doctype html>") and "<table>" in html and "GiB" in html
    table = run("analyze", "qwen3-8b").stdout
    assert "Weight memory" in table and "KV cache" in table and "Model Openness Framework" in table
    png, svg = tmp_path / "m.png", tmp_path / "m.svg"
    run("analyze", "llama-3.1-8b-instruct", "--chart", str(png), "--format", "json")
    run("compare", "llama-3.1-8b-instruct", "qwen3-8b", "--chart", str(svg))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert b"<svg" in svg.read_bytes()[:1000] and b"Qwen3 8B" in svg.read_bytes()


def test_compare_the_papers_four_models() -> None:
    out = json.loads(run("compare", "llama-3.1-405b-instruct", "deepseek-v3", "gpt-4", "claude-3.5-sonnet",
                         "--format", "json").stdout)
    titles = [t["title"] for t in out["tables"]]
    assert titles[:3] == ["Resourcing: comparing models", "Technical usability: comparing models",
                          "Utility: comparing models"]
    rows = {row[0]: row[1:] for row in out["tables"][0]["rows"]}
    assert rows["Hosting infrastructure"][2:] == ["N/A (deployer supplied)"] * 2
    assert rows["Hosting infrastructure"][0].startswith("13 x h100-80gb by memory")
    assert "$10.00" in rows["API cost per token"][2] and "$30.00" in rows["API cost per token"][2]
    assert "$0.07" in rows["API cost per token"][1]
    closed = out["profiles"][2]
    assert closed["weights"] == "closed" and closed["parameters"]["total"] is None
    assert closed["openness"]["mof_class"] is None


def test_paper_and_bad_input() -> None:
    figures = {f["id"]: f for f in json.loads(run("paper", "--format", "json").stdout)}
    assert figures["per-million-input"]["correct"].startswith("$183.33")
    missing = run("analyze", "no-such-model-anywhere", check=False)
    assert missing.returncode == 1 and "not a file, a directory or a catalogue model" in missing.stderr
    assert "compare --list" in missing.stderr and "qwen3-8b" not in missing.stderr  # no catalogue dump
    misspelt = run("analyze", "qwen3-8bb", check=False)
    assert misspelt.returncode == 1 and "Did you mean qwen3-8b" in misspelt.stderr  # the nearest (issue 12)
    bad_gpu = run("analyze", "qwen3-8b", "--gpu", "tpu-v9", check=False)
    assert bad_gpu.returncode == 1 and "unknown accelerator" in bad_gpu.stderr
    few = run("compare", "qwen3-8b", check=False)
    assert few.returncode == 1 and "two or more" in few.stderr


# ---------------------------------------------------------------------------------------------
# The server


def upload_tiny(api: HfApi, repo_id: str, folder: Path) -> None:
    api.create_repo(repo_id)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="tiny")


def profile_of(server: Any, repo_id: str, token: str | None, revision: str | None = None) -> httpx.Response:
    url = f"{server.url}/api/models/{repo_id}/access-profile" + (f"/{revision}" if revision else "")
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=60)


def test_server_profile_matches_the_local_one_and_is_cached(server: Any, api: HfApi, owner: tuple[str, str],
                                                             tiny: Path) -> None:
    repo_id = f"{owner[0]}/tiny-{uuid.uuid4().hex[:6]}"
    upload_tiny(api, repo_id, tiny)
    first = profile_of(server, repo_id, owner[1])
    assert first.status_code == 200, first.text
    profile = first.json()
    assert profile["parameters"]["total"] == tiny_parameters(tiny)
    assert profile["revision"] == api.model_info(repo_id).sha
    assert profile_of(server, repo_id, owner[1]).json() == profile
    with server.db.session() as session:
        rows = session.query(CachedProfile).filter_by(commit_sha=profile["revision"]).count()
    assert rows == 1
    api.create_tag(repo_id, tag="v1")
    assert profile_of(server, repo_id, owner[1], "v1").json()["parameters"] == profile["parameters"]
    missing = profile_of(server, repo_id, owner[1], "no-such-branch")
    assert missing.status_code == 404

    # The CLI against the server reads the start of each shard, nothing else of the weights.
    remote = json.loads(run("analyze", repo_id, "--endpoint", server.url, "--token", owner[1],
                            "--format", "json").stdout)
    assert remote["parameters"] == profile["parameters"]
    # One ranged read: the first 4 KiB hold the length and the whole header.
    assert remote["reading"]["requests"] == 1
    assert profile["reading"]["header_bytes"] < remote["reading"]["bytes_fetched"] == 4096


def test_server_profile_follows_the_access_decision(server: Any, api: HfApi, owner: tuple[str, str],
                                                    tiny: Path) -> None:
    repo_id = f"{owner[0]}/gated-{uuid.uuid4().hex[:6]}"
    upload_tiny(api, repo_id, tiny)
    api.update_repo_settings(repo_id, gated="manual")
    user, token = server.user()
    # Signed in, no grant: the card is read, the weight headers and config.json are not.
    outsider = profile_of(server, repo_id, token).json()
    assert outsider["parameters"]["total"] is None and outsider["architecture"] is None
    assert "model.safetensors" in outsider["restricted"]["files"]
    assert outsider["resourcing"]["listed_weight_bytes"] == (tiny / "model.safetensors").stat().st_size
    assert profile_of(server, repo_id, None).status_code == 200  # anonymous sees what the card shows, too
    # Granted: the full profile (another cache row: another view).
    HfApi(endpoint=server.url, token=owner[1]).grant_access(repo_id, user)
    granted = profile_of(server, repo_id, token).json()
    assert granted["parameters"]["total"] == tiny_parameters(tiny) and "restricted" not in granted
    # Private: outsiders get the same answer as for a repo that does not exist.
    api.update_repo_settings(repo_id, private=True)
    hidden = profile_of(server, repo_id, token)
    ghost = profile_of(server, f"{owner[0]}/ghost-{uuid.uuid4().hex[:6]}", token)
    assert hidden.status_code == ghost.status_code == 404
