"""Repo ids ignore letter case, as on the Hub: `Org/Repo` and `org/repo` are one repo (issue 12)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError


def test_any_case_names_the_same_repo(server: Any, api: HfApi, owner: tuple[str, str], tmp_path: Path) -> None:
    repo_id = f"{owner[0]}/Mixed-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id=repo_id)
    other_case = repo_id.upper()
    assert api.model_info(other_case).id == repo_id  # the casing it was created with
    path = hf_hub_download(other_case, "a.txt", endpoint=server.url, token=owner[1], cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"hello"
    assert httpx.get(f"{server.url}/{repo_id.lower()}/resolve/main/a.txt").content == b"hello"
    # Creating it again in another case is the same repo: 409 (exist_ok answers the existing one).
    with pytest.raises(Exception, match="already"):
        api.create_repo(repo_id.lower())
    assert api.create_repo(repo_id.lower(), exist_ok=True).repo_id == repo_id
    # A namespace named in another case is the same user.
    created = api.create_repo(f"{owner[0].upper()}/second-{uuid.uuid4().hex[:6]}")
    assert created.repo_id.startswith(f"{owner[0]}/")


def test_another_case_of_a_hidden_repo_is_still_hidden(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    repo_id = f"{owner[0]}/Secret-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, private=True)
    _, token = server.user()
    outsider = HfApi(endpoint=server.url, token=token)
    for name in (repo_id, repo_id.lower(), repo_id.upper()):
        with pytest.raises(RepositoryNotFoundError):
            outsider.model_info(name)
    hidden = httpx.get(f"{server.url}/api/models/{repo_id.lower()}", headers={"Authorization": f"Bearer {token}"})
    missing = httpx.get(f"{server.url}/api/models/{owner[0]}/nope-{uuid.uuid4().hex[:6]}",
                        headers={"Authorization": f"Bearer {token}"})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.headers["x-error-code"] == missing.headers["x-error-code"] == "RepoNotFound"
