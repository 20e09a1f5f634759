"""The Hub's error contract, as the unchanged client reads it.

Each case checks both sides: the exception class `huggingface_hub` raises, and the raw HTTP
status with its `X-Error-Code` header (which the client maps to those classes; HEAD responses
have no body, so the code must travel in headers).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from releasehub.accounts import service as accounts


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def raw(server: Any, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", headers={**auth(token), **kwargs.pop("headers", {})},
                         **kwargs)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers.get("x-error-code") == code, dict(response.headers)
    assert response.headers.get("x-error-message")
    if response.request.method == "HEAD":
        assert response.content == b""
    else:
        assert "error" in response.json()


@pytest.fixture
def populated(api: HfApi, repo_id: str) -> str:
    api.upload_file(path_or_fileobj=b"hello\n", path_in_repo="hello.txt", repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"\x00\x01" * 512, path_in_repo="weights.bin", repo_id=repo_id)
    return repo_id


# ---------------------------------------------------------------- missing things


def test_missing_repo(server: Any, owner: tuple[str, str], tmp_path: Path) -> None:
    name, token = owner
    missing = f"{name}/missing-{uuid.uuid4().hex[:6]}"
    api = HfApi(endpoint=server.url, token=token)
    anon = HfApi(endpoint=server.url, token=False)

    with pytest.raises(RepositoryNotFoundError):
        api.model_info(missing)
    with pytest.raises(RepositoryNotFoundError):
        anon.model_info(missing)
    with pytest.raises(RepositoryNotFoundError):
        api.list_repo_files(missing)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(missing, "config.json", endpoint=server.url, token=token, cache_dir=str(tmp_path))
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(missing, "config.json", endpoint=server.url, token=False, cache_dir=str(tmp_path))

    assert_error(raw(server, "GET", f"/api/models/{missing}", token), 404, "RepoNotFound")
    assert_error(raw(server, "GET", f"/api/models/{missing}"), 401, "RepoNotFound")
    assert_error(raw(server, "GET", f"/api/models/{missing}/tree/main", token), 404, "RepoNotFound")
    assert_error(raw(server, "GET", f"/{missing}/resolve/main/config.json", token), 404, "RepoNotFound")
    assert_error(raw(server, "HEAD", f"/{missing}/resolve/main/config.json", token), 404, "RepoNotFound")
    assert_error(raw(server, "HEAD", f"/{missing}/resolve/main/config.json"), 401, "RepoNotFound")
    # A namespace that does not exist at all looks the same.
    nobody = f"nobody-{uuid.uuid4().hex[:6]}/repo"
    assert_error(raw(server, "GET", f"/api/models/{nobody}", token), 404, "RepoNotFound")


def test_missing_revision(server: Any, api: HfApi, populated: str, tmp_path: Path) -> None:
    with pytest.raises(RevisionNotFoundError):
        api.model_info(populated, revision="nope")
    with pytest.raises(RevisionNotFoundError):
        api.list_repo_files(populated, revision="nope")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(populated, "hello.txt", revision="nope", endpoint=server.url, token=api.token,
                        cache_dir=str(tmp_path))
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(populated, "hello.txt", revision="0" * 40, endpoint=server.url, token=api.token,
                        cache_dir=str(tmp_path))

    for method, path in [
        ("GET", f"/api/models/{populated}/revision/nope"),
        ("GET", f"/api/models/{populated}/tree/nope"),
        ("GET", f"/{populated}/resolve/nope/hello.txt"),
        ("HEAD", f"/{populated}/resolve/nope/hello.txt"),
    ]:
        assert_error(raw(server, method, path, api.token), 404, "RevisionNotFound")


def test_missing_file(server: Any, api: HfApi, populated: str, tmp_path: Path) -> None:
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(populated, "missing.txt", endpoint=server.url, token=api.token,
                        cache_dir=str(tmp_path))
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(populated, "missing.txt", endpoint=server.url, token=False, cache_dir=str(tmp_path))
    assert not api.file_exists(populated, "missing.txt")

    head = raw(server, "HEAD", f"/{populated}/resolve/main/missing.txt", api.token)
    assert_error(head, 404, "EntryNotFound")
    assert head.content == b""
    for path in (f"/{populated}/resolve/main/missing.txt", f"/api/models/{populated}/tree/main/missing"):
        assert_error(raw(server, "GET", path, api.token), 404, "EntryNotFound")


# ---------------------------------------------------------------- private repos


def test_private_repo_visibility(server: Any, tmp_path: Path) -> None:
    owner_name, owner_token = server.user()
    other_name, other_token = server.user()
    owner_api = HfApi(endpoint=server.url, token=owner_token)
    repo_id = f"{owner_name}/secret-{uuid.uuid4().hex[:6]}"
    owner_api.create_repo(repo_id, private=True)
    owner_api.upload_file(path_or_fileobj=b"secret\n", path_in_repo="secret.txt", repo_id=repo_id)

    # The owner sees it.
    info = owner_api.model_info(repo_id)
    assert info.private is True
    path = hf_hub_download(repo_id, "secret.txt", endpoint=server.url, token=owner_token,
                           cache_dir=str(tmp_path / "owner"))
    assert Path(path).read_bytes() == b"secret\n"
    assert raw(server, "GET", f"/{repo_id}/resolve/main/secret.txt", owner_token).status_code == 200

    # Anonymous: 401 RepoNotFound, like a missing repo.
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server.url, token=False).model_info(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo_id, "secret.txt", endpoint=server.url, token=False,
                        cache_dir=str(tmp_path / "anon"))
    assert_error(raw(server, "GET", f"/api/models/{repo_id}"), 401, "RepoNotFound")
    assert_error(raw(server, "GET", f"/{repo_id}/resolve/main/secret.txt"), 401, "RepoNotFound")
    assert_error(raw(server, "HEAD", f"/{repo_id}/resolve/main/secret.txt"), 401, "RepoNotFound")

    # Another user: 404 RepoNotFound, never 403 (that would reveal the repo).
    other_api = HfApi(endpoint=server.url, token=other_token)
    with pytest.raises(RepositoryNotFoundError):
        other_api.model_info(repo_id)
    assert not other_api.repo_exists(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo_id, "secret.txt", endpoint=server.url, token=other_token,
                        cache_dir=str(tmp_path / "other"))
    for method, path in [("GET", f"/api/models/{repo_id}"), ("GET", f"/{repo_id}/resolve/main/secret.txt"),
                         ("HEAD", f"/{repo_id}/resolve/main/secret.txt"),
                         ("GET", f"/api/models/{repo_id}/tree/main"), ("GET", f"/api/models/{repo_id}/refs")]:
        assert_error(raw(server, method, path, other_token), 404, "RepoNotFound")
    # ... and the same answer whether or not the file exists.
    assert_error(raw(server, "GET", f"/{repo_id}/resolve/main/missing.txt", other_token), 404, "RepoNotFound")
    # Writing to it is refused the same way.
    with pytest.raises(RepositoryNotFoundError):
        other_api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    # Listings leave it out.
    assert repo_id not in {m.id for m in other_api.list_models(author=owner_name)}
    assert repo_id in {m.id for m in owner_api.list_models(author=owner_name)}

    # The client's update_repo_settings (which sends `visibility`) opens and closes it again.
    owner_api.update_repo_settings(repo_id, private=False)
    assert raw(server, "GET", f"/{repo_id}/resolve/main/secret.txt").status_code == 200
    assert other_api.model_info(repo_id).private is False
    owner_api.update_repo_settings(repo_id, private=True)
    assert_error(raw(server, "GET", f"/{repo_id}/resolve/main/secret.txt"), 401, "RepoNotFound")
    # Only its admins may change that.
    with pytest.raises(RepositoryNotFoundError):
        other_api.update_repo_settings(repo_id, private=False)


def test_private_org_repo_visible_to_members(server: Any, tmp_path: Path) -> None:
    admin_name, admin_token = server.user()
    member_name, member_token = server.user()
    _, outsider_token = server.user()
    org = server.org(f"org-{uuid.uuid4().hex[:8]}", admin_name)
    with server.db.session() as session:
        accounts.add_member(session, org, member_name, role="read")

    repo_id = f"{org}/internal-{uuid.uuid4().hex[:6]}"
    admin_api = HfApi(endpoint=server.url, token=admin_token)
    admin_api.create_repo(repo_id, private=True)
    admin_api.upload_file(path_or_fileobj=b"org data\n", path_in_repo="data.txt", repo_id=repo_id)
    # `private` is the releasing team (write and admin); `internal` opens it to every member.
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server.url, token=member_token).model_info(repo_id)
    internal = httpx.put(f"{server.url}/api/models/{repo_id}/settings", json={"visibility": "internal"},
                         headers={"Authorization": f"Bearer {admin_token}"})
    assert internal.status_code == 200, internal.text

    member_api = HfApi(endpoint=server.url, token=member_token)
    assert member_api.model_info(repo_id).private is True
    path = hf_hub_download(repo_id, "data.txt", endpoint=server.url, token=member_token,
                           cache_dir=str(tmp_path / "member"))
    assert Path(path).read_bytes() == b"org data\n"
    # A reader may see but not write: that is a 403, since the repo is visible to them.
    with pytest.raises(HfHubHTTPError) as excinfo:
        member_api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert excinfo.value.response.status_code == 403
    assert not isinstance(excinfo.value, RepositoryNotFoundError)

    outsider_api = HfApi(endpoint=server.url, token=outsider_token)
    with pytest.raises(RepositoryNotFoundError):
        outsider_api.model_info(repo_id)
    assert_error(raw(server, "GET", f"/api/models/{repo_id}", outsider_token), 404, "RepoNotFound")
    assert_error(raw(server, "GET", f"/{repo_id}/resolve/main/data.txt", outsider_token), 404, "RepoNotFound")


# ---------------------------------------------------------------- credentials


def test_read_token_cannot_upload(server: Any, owner: tuple[str, str], repo_id: str) -> None:
    read_token = server.token(owner[0], scope="read")
    read_api = HfApi(endpoint=server.url, token=read_token)
    assert read_api.model_info(repo_id).id == repo_id  # reading is fine

    with pytest.raises(HfHubHTTPError) as excinfo:
        read_api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert excinfo.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as excinfo:
        read_api.create_repo(f"{owner[0]}/new-{uuid.uuid4().hex[:6]}")
    assert excinfo.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as excinfo:
        read_api.create_branch(repo_id, branch="nope")
    assert excinfo.value.response.status_code == 403

    payload = (json.dumps({"key": "header", "value": {"summary": "x"}}) + "\n").encode()
    response = raw(server, "POST", f"/api/models/{repo_id}/commit/main", read_token, content=payload,
                   headers={"Content-Type": "application/x-ndjson"})
    assert_error(response, 403, "Forbidden")
    assert HfApi(endpoint=server.url, token=owner[1]).list_repo_files(repo_id) == [".gitattributes"]


def test_invalid_token(server: Any, repo_id: str) -> None:
    bogus = "hf_" + uuid.uuid4().hex
    response = raw(server, "GET", "/api/whoami-v2", bogus)
    assert response.status_code == 401
    assert raw(server, "GET", "/api/whoami-v2").status_code == 401
    with pytest.raises(HfHubHTTPError) as excinfo:
        HfApi(endpoint=server.url, token=bogus).whoami()
    assert excinfo.value.response.status_code == 401

    # A bad token is rejected even on a public repo (not silently treated as anonymous), and the client
    # reports it as bad credentials, not as a missing repo.
    response = raw(server, "GET", f"/api/models/{repo_id}", bogus)
    assert response.status_code == 401
    assert response.headers.get("x-error-message") == "Invalid credentials in Authorization header"
    with pytest.raises(HfHubHTTPError) as excinfo:
        HfApi(endpoint=server.url, token=bogus).model_info(repo_id)
    assert excinfo.value.response.status_code == 401
    assert not isinstance(excinfo.value, RepositoryNotFoundError)
    assert raw(server, "GET", f"/api/models/{repo_id}", None).status_code == 200


# ---------------------------------------------------------------- conflicts


def test_create_existing_repo(server: Any, api: HfApi, owner: tuple[str, str], repo_id: str) -> None:
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_repo(repo_id)
    assert excinfo.value.response.status_code == 409

    url = api.create_repo(repo_id, exist_ok=True)
    assert url.repo_id == repo_id
    assert str(url) == f"{server.url}/{repo_id}"

    response = raw(server, "POST", "/api/repos/create", owner[1], json={"name": repo_id, "type": "model"})
    assert_error(response, 409, "RepoExists")
    assert response.json()["url"] == f"{server.url}/{repo_id}"
    # The same through the client's body shape (name + organization).
    ns, name = repo_id.split("/")
    response = raw(server, "POST", "/api/repos/create", owner[1],
                   json={"name": name, "organization": ns, "type": "model"})
    assert_error(response, 409, "RepoExists")
    assert response.json()["url"] == f"{server.url}/{repo_id}"

    # Someone else may not create in this namespace: 403, whether or not the name is taken.
    _, other_token = server.user()
    assert raw(server, "POST", "/api/repos/create", other_token,
               json={"name": repo_id}).status_code == 403
    assert raw(server, "POST", "/api/repos/create", other_token,
               json={"name": f"{ns}/fresh-{uuid.uuid4().hex[:6]}"}).status_code == 403


# ---------------------------------------------------------------- revisions in URLs


def test_revision_with_slash(server: Any, api: HfApi, populated: str, tmp_path: Path) -> None:
    api.create_branch(populated, branch="feature/x")
    commit = api.upload_file(path_or_fileobj=b"feature\n", path_in_repo="feature.txt", repo_id=populated,
                             revision="feature/x")
    path = hf_hub_download(populated, "feature.txt", revision="feature/x", endpoint=server.url,
                           token=api.token, cache_dir=str(tmp_path))
    assert Path(path).read_bytes() == b"feature\n"
    assert api.model_info(populated, revision="feature/x").sha == commit.oid
    assert "feature.txt" in api.list_repo_files(populated, revision="feature/x")
    assert "feature.txt" not in api.list_repo_files(populated)
    assert {b.name for b in api.list_repo_refs(populated).branches} == {"main", "feature/x"}
    assert api.revision_exists(populated, "feature/x")

    response = raw(server, "GET", f"/{populated}/resolve/feature%2Fx/feature.txt", api.token)
    assert response.status_code == 200
    assert response.content == b"feature\n"
    assert response.headers["x-repo-commit"] == commit.oid
    response = raw(server, "GET", f"/{populated}/resolve/refs%2Fheads%2Ffeature%2Fx/feature.txt", api.token)
    assert response.status_code == 200

    api.delete_branch(populated, branch="feature/x")
    assert not api.revision_exists(populated, "feature/x")


def test_encoded_pr_ref_is_revision_not_found(server: Any, api: HfApi, populated: str,
                                              tmp_path: Path) -> None:
    for method, path in [
        ("GET", f"/{populated}/resolve/refs%2Fpr%2F1/hello.txt"),
        ("HEAD", f"/{populated}/resolve/refs%2Fpr%2F1/hello.txt"),
        ("GET", f"/api/models/{populated}/revision/refs%2Fpr%2F1"),
        ("GET", f"/api/models/{populated}/tree/refs%2Fpr%2F1"),
        ("GET", f"/api/models/{populated}/commits/refs%2Fpr%2F1"),
    ]:
        assert_error(raw(server, method, path, api.token), 404, "RevisionNotFound")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(populated, "hello.txt", revision="refs/pr/1", endpoint=server.url, token=api.token,
                        cache_dir=str(tmp_path))
    with pytest.raises(RevisionNotFoundError):
        api.model_info(populated, revision="refs/pr/1")
    assert not api.revision_exists(populated, "refs/pr/1")


# ---------------------------------------------------------------- no Xet


def _has_xet_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k.lower() in ("xethash", "xet_hash") or _has_xet_key(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_xet_key(v) for v in value)
    return False


def _assert_no_xet(response: httpx.Response) -> None:
    assert response.status_code in (200, 206), response.text
    assert not [h for h in response.headers if h.lower().startswith("x-xet")], dict(response.headers)
    assert "xet" not in response.headers.get("link", "").lower()
    if response.headers.get("content-type", "").startswith("application/json"):
        assert not _has_xet_key(response.json()), response.text


def test_no_xet_anywhere(server: Any, api: HfApi, populated: str) -> None:
    token = api.token
    for path in [
        f"/api/models/{populated}",
        f"/api/models/{populated}?blobs=true",
        f"/api/models/{populated}/revision/main?blobs=true",
        f"/api/models/{populated}/tree/main",
        f"/api/models/{populated}/tree/main?recursive=true&expand=true",
        f"/api/models/{populated}/refs",
        f"/api/models/{populated}/commits/main",
    ]:
        _assert_no_xet(raw(server, "GET", path, token))
    _assert_no_xet(raw(server, "POST", f"/api/models/{populated}/paths-info/main", token,
                       data={"paths": ["hello.txt", "weights.bin"], "expand": "true"}))
    for filename in ("hello.txt", "weights.bin"):
        for method in ("GET", "HEAD"):
            _assert_no_xet(raw(server, method, f"/{populated}/resolve/main/{filename}", token))
        _assert_no_xet(raw(server, "GET", f"/{populated}/resolve/main/{filename}", token,
                           headers={"Range": "bytes=0-3"}))

    # The client sees LFS, not Xet, and no xet_hash on any entry.
    for entry in api.list_repo_tree(populated, recursive=True, expand=True):
        assert getattr(entry, "xet_hash", None) is None
    weights = api.get_paths_info(populated, ["weights.bin"])[0]
    assert weights.lfs is not None and getattr(weights, "xet_hash", None) is None


def test_a_repo_id_without_a_namespace_is_a_missing_repo(server) -> None:  # type: ignore[no-untyped-def]
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError

    api = HfApi(endpoint=server.url, token=False)
    assert api.repo_exists("gpt2") is False
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("gpt2", "config.json", endpoint=server.url, token=False)
    head = httpx.head(f"{server.url}/gpt2/resolve/main/config.json")
    assert head.status_code == 401 and head.headers["X-Error-Code"] == "RepoNotFound"
    _, token = server.user()
    signed = httpx.get(f"{server.url}/api/models/gpt2", headers={"Authorization": f"Bearer {token}"})
    assert signed.status_code == 404 and signed.headers["X-Error-Code"] == "RepoNotFound"
    # An unserved route of a real repo stays a plain NotFound.
    assert httpx.get(f"{server.url}/api/models/a/b/discussions/x/y").headers["X-Error-Code"] == "NotFound"


def test_unserved_hub_routes_say_what_is_not_served(server: Any, api: HfApi, repo_id: str) -> None:
    """Not `{"error": "Not Found"}`: the answer names the route and why it is not served (issue 12)."""
    with pytest.raises(HfHubHTTPError, match="moving \\(renaming\\) a repository is not supported"):
        api.move_repo(repo_id, f"{repo_id}-renamed")
    spaces = raw(server, "GET", "/api/spaces/someone/app")
    assert_error(spaces, 404, "NotFound")
    assert "GET /api/spaces/someone/app is not served: datasets and spaces" in spaces.json()["error"]
    other = raw(server, "GET", "/api/no-such-route")
    assert other.json()["error"] == "GET /api/no-such-route is not served by releasehub (see /docs for the routes served)."


def test_refs_and_conflicts_answer_in_the_hubs_words(server: Any, api: HfApi, repo_id: str) -> None:
    """huggingface_hub's own tests match on these sentences (found by `make compat`, issue 12)."""
    api.create_branch(repo_id, branch="cool-branch")
    for branch in ("cool-branch", "main"):
        with pytest.raises(HfHubHTTPError, match=f"Reference refs/heads/{branch} already exists"):
            api.create_branch(repo_id, branch=branch)
    api.create_branch(repo_id, branch="cool-branch", exist_ok=True)
    with pytest.raises(HfHubHTTPError, match="Invalid rev id"):
        api.delete_branch(repo_id, branch="no-such-branch")
    with pytest.raises(RevisionNotFoundError):  # the missing revision first, before the tag's name
        api.create_tag(repo_id, tag="invalid tag", revision="foobar")
    parent = api.model_info(repo_id).sha
    api.upload_file(path_or_fileobj=b"1", path_in_repo="a.txt", repo_id=repo_id)
    from huggingface_hub import CommitOperationAdd

    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_commit(repo_id, [CommitOperationAdd("b.txt", b"2")], commit_message="late", parent_commit=parent)
    assert conflict.value.response.status_code == 412
    assert "The branch was updated since you opened this page. Please refresh and try again." in str(conflict.value)
