"""The real `hf` CLI (from huggingface_hub) as a subprocess, pointed at the server with HF_ENDPOINT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import HfApi

HF = Path(sys.executable).with_name("hf")


def hf_env(server: Any, token: str | None, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update({
        "HF_ENDPOINT": server.url,
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",  # no calls to pypi.org
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "NO_COLOR": "1",
    })
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def run_hf(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HF), *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module", autouse=True)
def _needs_hf() -> None:
    if not HF.exists():
        pytest.fail(f"the `hf` CLI is not installed next to {sys.executable}")


def test_hf_auth_whoami(server: Any, owner: tuple[str, str], tmp_path: Path) -> None:
    name, token = owner
    result = run_hf(["auth", "whoami"], hf_env(server, token, tmp_path / "home"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert name in result.stdout

    as_json = run_hf(["auth", "whoami", "--format", "json"], hf_env(server, token, tmp_path / "home"))
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    payload = json.loads(as_json.stdout)
    assert payload["user"] == name
    assert payload["endpoint"] == server.url

    bogus = run_hf(["auth", "whoami"], hf_env(server, "hf_" + uuid.uuid4().hex, tmp_path / "home"))
    assert bogus.returncode != 0
    assert name not in bogus.stdout
    assert "invalid" in bogus.stderr.lower()


def test_hf_download_local_dir(server: Any, api: HfApi, repo_id: str, tmp_path: Path) -> None:
    files = {
        "config.json": json.dumps({"model_type": "llama"}).encode(),
        "weights.safetensors": b"\x00\x01\x02" * 1000,
        "nested/readme.txt": b"nested\n",
    }
    source = tmp_path / "source"
    for path, content in files.items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_bytes(content)
    api.upload_folder(repo_id=repo_id, folder_path=str(source))
    env = hf_env(server, api.token, tmp_path / "home")

    target = tmp_path / "target"
    result = run_hf(["download", repo_id, "--local-dir", str(target)], env)
    assert result.returncode == 0, result.stdout + result.stderr
    downloaded = {
        p.relative_to(target).as_posix(): p.read_bytes()
        for p in target.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(target).parts
    }
    assert set(downloaded) == {*files, ".gitattributes"}
    for path, content in files.items():
        assert downloaded[path] == content
    assert str(target) in result.stdout

    # Named files only, and a file into the default cache under HF_HOME.
    one = tmp_path / "one"
    result = run_hf(["download", repo_id, "config.json", "--local-dir", str(one)], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in one.iterdir() if p.name != ".cache") == ["config.json"]
    result = run_hf(["download", repo_id, "nested/readme.txt"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    owner_name, name = repo_id.split("/")
    cached = list((tmp_path / "home" / "hub" / f"models--{owner_name}--{name}" / "snapshots").glob(
        "*/nested/readme.txt"))
    assert [p.read_bytes() for p in cached] == [b"nested\n"]


def test_hf_download_missing_repo_fails(server: Any, owner: tuple[str, str], tmp_path: Path) -> None:
    name, token = owner
    missing = f"{name}/missing-{uuid.uuid4().hex[:6]}"
    result = run_hf(["download", missing, "--local-dir", str(tmp_path / "x")],
                    hf_env(server, token, tmp_path / "home"))
    assert result.returncode != 0
    assert "not found" in (result.stdout + result.stderr).lower()
