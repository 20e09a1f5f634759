"""`releasehub push DIR REPO` as a user runs it: a subprocess with HF_ENDPOINT and HF_TOKEN set,
and without HF_HUB_DISABLE_XET (push must switch Xet off by itself)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from conftest import free_port
from huggingface_hub import HfApi


def _env(server, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_XET", "HF_TOKEN")}
    env["HF_ENDPOINT"] = server.url if server is not None else f"http://127.0.0.1:{free_port()}"
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def _push(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    assert "HF_HUB_DISABLE_XET" not in env
    return subprocess.run([sys.executable, "-m", "releasehub", "push", *args], env=env, capture_output=True,
                          text=True, timeout=180)


def _folder(tmp_path: Path) -> dict[str, bytes]:
    files = {
        "README.md": b"---\nlicense: mit\n---\n# Pushed\n",
        "config.json": b'{"model_type": "bert"}',
        "weights/model.safetensors": os.urandom(3 * 1024 * 1024 + 17),
        "tokenizer/vocab.txt": b"a\nb\nc\n",
    }
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    return files


def _assert_clean_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), result.stderr
    return lines[0]


def test_push_uploads_a_folder_with_progress(server, owner, tmp_path: Path) -> None:
    user, token = owner
    folder = tmp_path / "release"
    files = _folder(folder)
    repo_id = f"{user}/pushed-{uuid.uuid4().hex[:6]}"
    result = _push(_env(server, token), str(folder), repo_id, "-m", "first push")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    # Progress: the bar's description and byte counts, then the summary line with the commit.
    assert "upload 4 files" in result.stdout
    assert "MB" in result.stdout or "kB" in result.stdout
    api = HfApi(endpoint=server.url, token=token)
    head = api.model_info(repo_id).sha
    assert head is not None
    assert "pushed 4 changed files of 4" in result.stdout
    assert head in result.stdout.replace("\n", "")

    assert set(api.list_repo_files(repo_id)) == {".gitattributes", *files}
    for rel, data in files.items():
        got = httpx.get(f"{server.url}/{repo_id}/resolve/main/{rel}", timeout=60).content
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(), rel
    entry = api.get_paths_info(repo_id, ["weights/model.safetensors"])[0]
    assert entry.lfs is not None
    commits = api.list_repo_commits(repo_id)
    assert commits[0].title == "first push"

    # A second push to the existing repo and to a branch.
    (folder / "extra.txt").write_text("more")
    api.create_branch(repo_id, branch="next")
    again = _push(_env(server, token), str(folder), repo_id, "--revision", "next")
    assert again.returncode == 0, again.stdout + again.stderr
    # Only the new file is committed; unchanged files (inline and LFS) are left out.
    assert "pushed 1 changed files of 5" in again.stdout
    assert "extra.txt" in api.list_repo_files(repo_id, revision="next")
    assert "extra.txt" not in api.list_repo_files(repo_id)
    # Only the changed file travels: the bar counts one file (the LFS weights were hashed locally).
    assert "upload 1 files" in again.stdout
    # Unchanged: "nothing to push" at once, no upload bar first (issue 12).
    same = _push(_env(server, token), str(folder), repo_id, "--revision", "next")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "nothing to push" in same.stdout and "upload" not in same.stdout


def test_push_of_changed_weights_declares_their_hash_and_reuses_stored_blobs(server, owner, tmp_path: Path) -> None:
    """A changed LFS file is hashed to find that it changed; push then sends it with `sha256=` and,
    when the repo already has that blob (an older version brought back), does not send it again.
    Another repo's blob of the same content is sent again: existing elsewhere grants nothing."""
    user, token = owner
    folder = tmp_path / "weights"
    folder.mkdir()
    weights = folder / "model.safetensors"
    first, second = os.urandom(2 * 1024 * 1024), os.urandom(2 * 1024 * 1024)
    repo_id = f"{user}/reuse-{uuid.uuid4().hex[:6]}"
    weights.write_bytes(first)
    assert _push(_env(server, token), str(folder), repo_id).returncode == 0
    weights.write_bytes(second)
    changed = _push(_env(server, token), str(folder), repo_id)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "pushed 1 changed files of 1" in changed.stdout and "not sent again" not in changed.stdout
    weights.write_bytes(first)  # back to the first version: the repo has that blob
    back = _push(_env(server, token), str(folder), repo_id)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "1 of them already on the server (not sent again)" in back.stdout.replace("\n", "")
    got = httpx.get(f"{server.url}/{repo_id}/resolve/main/model.safetensors", timeout=60).content
    assert hashlib.sha256(got).digest() == hashlib.sha256(first).digest()

    # Another repo whose head has `second` at the same path: `first` exists on the server, but not
    # for this repo, so it is sent.
    other = f"{user}/reuse-other-{uuid.uuid4().hex[:6]}"
    weights.write_bytes(second)
    assert _push(_env(server, token), str(folder), other).returncode == 0
    weights.write_bytes(first)
    fresh = _push(_env(server, token), str(folder), other)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "pushed 1 changed files of 1" in fresh.stdout and "not sent again" not in fresh.stdout


def test_push_private_repo(server, owner, tmp_path: Path) -> None:
    user, token = owner
    (tmp_path / "a.txt").write_text("secret")
    repo_id = f"{user}/private-{uuid.uuid4().hex[:6]}"
    result = _push(_env(server, token), str(tmp_path), repo_id, "--private")
    assert result.returncode == 0, result.stdout + result.stderr
    assert httpx.get(f"{server.url}/api/models/{repo_id}", timeout=30).status_code == 401
    assert HfApi(endpoint=server.url, token=token).model_info(repo_id).private


def test_push_with_read_only_token_fails_cleanly(server, owner, tmp_path: Path) -> None:
    user, token = owner
    read_only = server.token(user, scope="read")
    (tmp_path / "a.txt").write_text("a")
    new_repo = f"{user}/ro-{uuid.uuid4().hex[:6]}"
    line = _assert_clean_error(_push(_env(server, read_only), str(tmp_path), new_repo))
    assert "read-only" in line
    api = HfApi(endpoint=server.url, token=token)
    assert not api.repo_exists(new_repo)

    # An existing repo: the commit is refused just as cleanly, and nothing is committed.
    existing = f"{user}/ro-existing-{uuid.uuid4().hex[:6]}"
    api.create_repo(existing)
    line = _assert_clean_error(_push(_env(server, read_only), str(tmp_path), existing))
    assert "read-only" in line
    assert api.list_repo_files(existing) == [".gitattributes"]


def test_push_usage_errors(server, owner, tmp_path: Path) -> None:
    user, token = owner
    (tmp_path / "a.txt").write_text("a")
    anonymous = _assert_clean_error(_push(_env(server, None), str(tmp_path), f"{user}/anon"))
    assert "token" in anonymous.lower()
    bad_repo = _assert_clean_error(_push(_env(server, token), str(tmp_path), "no-slash"))
    assert "NAMESPACE/NAME" in bad_repo
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no files" in _assert_clean_error(_push(_env(server, token), str(empty), f"{user}/empty"))


def test_push_to_unreachable_server_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    line = _assert_clean_error(_push(_env(None, "rh_dummy"), str(tmp_path), "someone/repo"))
    assert "127.0.0.1" in line or "connect" in line.lower()


def test_push_warns_that_globs_in_a_card_are_public(server, owner, tmp_path: Path) -> None:
    user, token = owner
    (tmp_path / "README.md").write_text("---\nlicense: mit\nreleasehub:\n  stages:\n    - name: big\n"
                                        "      files: ['big/*']\n      releases: []\n---\n")
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "w.safetensors").write_bytes(b"w" * 100)
    repo_id = f"{user}/card-{uuid.uuid4().hex[:6]}"
    result = _push(_env(server, token), str(tmp_path), repo_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning:" in result.stderr and "policy set" in result.stderr
    # The stage holds: the weights do not exist for outsiders, and the card's globs are not shown to them.
    assert httpx.get(f"{server.url}/{repo_id}/resolve/main/big/w.safetensors").status_code == 404
    assert "releasehub" not in httpx.get(f"{server.url}/api/models/{repo_id}").json()["cardData"]
