"""The release gradient holds on every path an attacker would try (on SQLite and PostgreSQL).

- A commit may name an oid only when its author sent those bytes to this repo or may already
  download a file with that oid here: content stored for another repo is never claimable, and
  the refusal (and the LFS batch answer) reads exactly as for an oid that was never uploaded.
- A card's policy keys are applied only by the commit that changes them, by its author's role;
  relative times are fixed once; a `policy set` survives unrelated commits.
- Hosted-only is an allowlist; globs ignore case.
- A hidden repo and a missing one answer alike; commit titles never name hidden files.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
import warnings
from typing import Any

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationCopy, HfApi

WEIGHTS = b"secret weights " * 100
SHA = hashlib.sha256(WEIGHTS).hexdigest()


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def raw_commit(server: Any, token: str, repo_id: str, *lines: dict[str, Any], summary: str = "x",
               parent: str | None = None) -> httpx.Response:
    header: dict[str, Any] = {"summary": summary}
    if parent:
        header["parentCommit"] = parent
    body = "\n".join(json.dumps(item) for item in [{"key": "header", "value": header}, *lines])
    return httpx.post(f"{server.url}/api/models/{repo_id}/commit/main", content=body.encode(),
                      headers={**auth(token), "Content-Type": "application/x-ndjson"}, timeout=60)


def lfs_line(path: str, oid: str, size: int) -> dict[str, Any]:
    return {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": size}}


def commit_files(api: HfApi, repo_id: str, files: dict[str, bytes], title: str = "release") -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="It seems that you are about to commit a data file")
        api.create_commit(repo_id, [CommitOperationAdd(p, c) for p, c in files.items()], commit_message=title)


def put_policy(server: Any, token: str, repo_id: str, policy: dict[str, Any]) -> None:
    answer = httpx.put(f"{server.url}/api/models/{repo_id}/policy", json=policy, headers=auth(token))
    assert answer.status_code == 200, answer.text


def new_repo(api: HfApi, owner: str, prefix: str) -> str:
    repo_id = f"{owner}/{prefix}-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    return repo_id


def status_of(server: Any, token: str | None, repo_id: str, path: str) -> int:
    return httpx.get(f"{server.url}/{repo_id}/resolve/main/{path}", headers=auth(token)).status_code


# ---------------------------------------------------------------- 1. claims


LOCKED = {
    "gated": {"gated": "auto"},
    "private": {"visibility": "private"},
    "staged": {"stages": [{"name": "later", "files": ["*.safetensors"],
                           "releases": [{"audience": "everyone", "at": "2099-01-01"}]}]},
    "hosted-only": {"hosted_only": True},
}


@pytest.mark.parametrize("kind", sorted(LOCKED))
def test_a_commit_cannot_claim_content_stored_for_another_repo(server: Any, api: HfApi, owner: tuple[str, str],
                                                               kind: str) -> None:
    victim = new_repo(api, owner[0], f"victim-{kind}")
    commit_files(api, victim, {"model.safetensors": WEIGHTS})
    put_policy(server, owner[1], victim, LOCKED[kind])
    bob, bob_token = server.user()
    loot = new_repo(HfApi(endpoint=server.url, token=bob_token), bob, "loot")

    stolen = raw_commit(server, bob_token, loot, lfs_line("x.bin", SHA, len(WEIGHTS)))
    never = "ab" * 32
    missing = raw_commit(server, bob_token, loot, lfs_line("x.bin", never, len(WEIGHTS)))
    assert stolen.status_code == missing.status_code == 400
    # The refusal does not tell a blob stored elsewhere from one that was never uploaded.
    assert stolen.headers["X-Error-Code"] == missing.headers["X-Error-Code"]
    assert stolen.headers["X-Error-Message"].replace(SHA, never) == missing.headers["X-Error-Message"]
    assert stolen.json() == json.loads(json.dumps(missing.json()).replace(never, SHA))
    assert status_of(server, bob_token, loot, "x.bin") == 404

    # A wrong size cannot probe the stored size either.
    wrong = raw_commit(server, bob_token, loot, lfs_line("x.bin", SHA, 1))
    assert wrong.status_code == 400 and "declared size" not in wrong.text

    # The LFS batch asks bob for the bytes, as for any oid this repo does not hold.
    batch = httpx.post(f"{server.url}/{loot}.git/info/lfs/objects/batch", headers=auth(bob_token), json={
        "operation": "upload", "transfers": ["basic"], "objects": [{"oid": SHA, "size": len(WEIGHTS)}]})
    assert batch.status_code == 200
    assert "actions" in batch.json()["objects"][0]

    # No Xet read token for a subject who may not download from the repo at all (gated without a
    # grant, hidden): the answer is the download's. (Stages and hosted-only are decided per file.)
    read_token = httpx.get(f"{server.url}/api/models/{victim}/xet-read-token/main", headers=auth(bob_token))
    download = httpx.get(f"{server.url}/{victim}/resolve/main/model.safetensors", headers=auth(bob_token))
    if kind in ("gated", "private"):
        assert "accessToken" not in read_token.text
        assert (read_token.status_code, read_token.headers["X-Error-Code"]) == (
            download.status_code, download.headers["X-Error-Code"])


def org_with_writer(server: Any, owner: str) -> tuple[str, str, str]:
    """An organisation owned by `owner` with one more member of the write role: (org, writer, token)."""
    from releasehub.accounts import service as accounts

    org = server.org(f"lab-{uuid.uuid4().hex[:6]}", owner)
    writer, writer_token = server.user()
    with server.db.session() as session:
        accounts.add_member(session, org, writer, "write")
    return org, writer, writer_token


def test_team_members_cannot_copy_hosted_only_weights_out(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    org, writer, writer_token = org_with_writer(server, owner[0])
    hosted = f"{org}/hosted-{uuid.uuid4().hex[:6]}"
    api.create_repo(hosted)
    commit_files(api, hosted, {"model.safetensors": WEIGHTS})
    put_policy(server, owner[1], hosted, {"hosted_only": True})
    assert status_of(server, writer_token, hosted, "model.safetensors") == 403
    # A team member who never sent the weights may not name them: not in a repo of their own ...
    own = new_repo(HfApi(endpoint=server.url, token=writer_token), writer, "copy")
    assert raw_commit(server, writer_token, own, lfs_line("w.safetensors", SHA, len(WEIGHTS))).status_code == 400
    # ... nor in the hosted repo itself under a name that would download.
    renamed = raw_commit(server, writer_token, hosted, lfs_line("README-weights.md", SHA, len(WEIGHTS)))
    assert renamed.status_code == 400


def test_uploads_claim_for_their_repo_and_user_only(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    first = new_repo(api, owner[0], "first")
    commit_files(api, first, {"model.safetensors": WEIGHTS})
    # The uploader may copy within the repo (they may download it there) ...
    api.create_commit(first, [CommitOperationCopy("model.safetensors", "copy.safetensors")],
                      commit_message="copy")
    assert httpx.get(f"{server.url}/{first}/resolve/main/copy.safetensors", headers=auth(owner[1])).content == WEIGHTS
    # ... and in another repo of theirs the client sends the bytes again (the batch asks), then commits.
    second = new_repo(api, owner[0], "second")
    commit_files(api, second, {"model.safetensors": WEIGHTS})
    assert httpx.get(f"{server.url}/{second}/resolve/main/model.safetensors").content == WEIGHTS

    # An upload link is bound to its repo and user: changed, its signature fails.
    batch = httpx.post(f"{server.url}/{second}.git/info/lfs/objects/batch", headers=auth(owner[1]), json={
        "operation": "upload", "transfers": ["basic"], "objects": [{"oid": "cd" * 32, "size": 3}]}).json()
    href = batch["objects"][0]["actions"]["upload"]["href"]
    bob, bob_token = server.user()
    loot = new_repo(HfApi(endpoint=server.url, token=bob_token), bob, "loot")
    with httpx.Client() as client:
        repo_pk = int(httpx.URL(href).params["repo"])
        forged = str(httpx.URL(href).copy_set_param("repo", str(repo_pk + 1)))
        assert client.put(forged, content=b"abc").status_code == 403
    assert loot


def test_push_blobs_claim_for_the_repo(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    repo_id = new_repo(api, owner[0], "blobs")
    sent = httpx.post(f"{server.url}/api/models/{repo_id}/blobs", params={"size": len(WEIGHTS)},
                      content=WEIGHTS, headers=auth(owner[1]))
    assert sent.status_code == 200 and sent.json()["oid"] == SHA
    assert raw_commit(server, owner[1], repo_id, lfs_line("w.bin", SHA, len(WEIGHTS))).status_code == 200
    # Another user's commit to a repo they may write does not inherit the uploader's claim.
    bob, bob_token = server.user()
    other = new_repo(HfApi(endpoint=server.url, token=bob_token), bob, "other")
    assert raw_commit(server, bob_token, other, lfs_line("w.bin", SHA, len(WEIGHTS))).status_code == 400


# ---------------------------------------------------------------- 2. the card


STAGED_CARD = """---
license: mit
releasehub:
  stages:
    - name: big
      files: ["big/*"]
      releases:
        - {audience: everyone, at: "+30d"}
---
# staged
"""


def test_a_writers_card_never_changes_access_later(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    org, _, writer_token = org_with_writer(server, owner[0])
    repo_id = f"{org}/staged-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    commit_files(api, repo_id, {"README.md": STAGED_CARD.encode(), "big/w.safetensors": WEIGHTS})
    assert status_of(server, None, repo_id, "big/w.safetensors") == 404
    before = httpx.get(f"{server.url}/api/models/{repo_id}/policy", headers=auth(owner[1])).json()

    # The writer empties the stages in the card: withheld, and the commit says so.
    writer_api = HfApi(endpoint=server.url, token=writer_token)
    commit_files(writer_api, repo_id, {"README.md": b"---\nlicense: mit\nreleasehub:\n  stages: []\n---\n"},
                 title="card")
    assert status_of(server, None, repo_id, "big/w.safetensors") == 404
    # The admin's next, unrelated commit does not apply the writer's card.
    commit_files(api, repo_id, {"notes.txt": b"unrelated"}, title="notes")
    assert status_of(server, None, repo_id, "big/w.safetensors") == 404
    after = httpx.get(f"{server.url}/api/models/{repo_id}/policy", headers=auth(owner[1])).json()
    assert after["stages"] == before["stages"]


def test_policy_set_survives_commits_and_card_times_do_not_slide(server: Any, api: HfApi,
                                                                 owner: tuple[str, str]) -> None:
    repo_id = new_repo(api, owner[0], "times")
    commit_files(api, repo_id, {"README.md": STAGED_CARD.encode(), "big/w.safetensors": WEIGHTS})
    policy_url = f"{server.url}/api/models/{repo_id}/policy"
    first = httpx.get(policy_url, headers=auth(owner[1])).json()["stages"][0]["releases"][0]["at"]
    # The card changes elsewhere (another stage added): the first stage keeps its instant.
    card = STAGED_CARD.replace("# staged", "").replace(
        "  stages:\n", "  stages:\n    - name: data\n      files: [\"data/**\"]\n      releases: []\n")
    commit_files(api, repo_id, {"README.md": card.encode()}, title="card 2")
    stages = httpx.get(policy_url, headers=auth(owner[1])).json()["stages"]
    assert [s["name"] for s in stages] == ["data", "big"]
    assert stages[1]["releases"][0]["at"] == first

    # A policy set through the API survives an admin's commit that does not change the card.
    put_policy(server, owner[1], repo_id, {"gated": "manual", "stages": []})
    commit_files(api, repo_id, {"notes.txt": b"n"}, title="notes")
    kept = httpx.get(policy_url, headers=auth(owner[1])).json()
    assert kept.get("stages", []) == [] and kept["gated"] == "manual"


def test_card_globs_are_the_teams_and_the_commit_warns(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    repo_id = new_repo(api, owner[0], "globs")
    answer = raw_commit(server, owner[1], repo_id, {"key": "file", "value": {
        "path": "README.md", "encoding": "base64",
        "content": base64.b64encode(STAGED_CARD.encode()).decode()}})
    assert answer.status_code == 200, answer.text
    assert any("policy set" in w for w in answer.json()["warnings"])
    outsider, token = server.user()
    for who in (None, token):
        card = httpx.get(f"{server.url}/api/models/{repo_id}", headers=auth(who)).json()["cardData"]
        assert "releasehub" not in card and card["license"] == "mit"
    mine = httpx.get(f"{server.url}/api/models/{repo_id}", headers=auth(owner[1])).json()["cardData"]
    assert mine["releasehub"]["stages"][0]["files"] == ["big/*"]


# ---------------------------------------------------------------- 3. hosted-only, case


def test_hosted_only_is_an_allowlist(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    repo_id = new_repo(api, owner[0], "hosted")
    withheld = ["Model.SafeTensors", "w.GGUF", "x.pth.tar", "weights.pkl", "shard-00001", "sub/consolidated.00"]
    allowed = ["README.md", "config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
               "LICENSE", "docs/usage.md"]
    files = {p: b"bytes of " + p.encode() for p in withheld + allowed}
    files["README.md"] = b"---\nlicense: mit\n---\n# hosted\n"
    commit_files(api, repo_id, files)
    put_policy(server, owner[1], repo_id, {"hosted_only": True})
    for token in (None, owner[1]):
        for path in withheld:
            answer = httpx.get(f"{server.url}/{repo_id}/resolve/main/{path}", headers=auth(token))
            assert answer.status_code == 403 and answer.headers["X-Error-Code"] == "HostedOnly", (path, token)
        for path in allowed:
            assert status_of(server, token, repo_id, path) == 200, (path, token)


def test_stage_globs_ignore_case(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    repo_id = new_repo(api, owner[0], "case")
    commit_files(api, repo_id, {"Model.SafeTensors": WEIGHTS, "notes.txt": b"n"})
    put_policy(server, owner[1], repo_id, LOCKED["staged"])
    assert status_of(server, None, repo_id, "Model.SafeTensors") == 404
    assert status_of(server, None, repo_id, "notes.txt") == 200


# ---------------------------------------------------------------- 4. hidden equals missing


def _answer(response: httpx.Response, name: str, placeholder: str) -> tuple[Any, ...]:
    return (response.status_code, response.headers.get("X-Error-Code"),
            (response.headers.get("X-Error-Message") or "").replace(name, placeholder),
            response.text.replace(name, placeholder), response.headers.get("WWW-Authenticate"))


def test_a_hidden_repo_answers_exactly_as_a_missing_one(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    hidden = new_repo(api, owner[0], "hidden")
    api.update_repo_settings(hidden, private=True)
    missing = f"{owner[0]}/missing-{uuid.uuid4().hex[:6]}"
    _, outsider = server.user()
    urls = ["/api/models/{r}", "/api/models/{r}/tree/main", "/api/models/{r}/commits/main", "/{r}/resolve/main/README.md",
            "/api/models/{r}/refs", "/api/models/{r}/access-terms", "/api/models/{r}/xet-read-token/main",
            "/api/models/{r}/xet-write-token/main", "/api/models/{r}/auth-check"]
    for token in (None, outsider):
        for url in urls:
            for method in ("GET", "HEAD"):
                seen = httpx.request(method, server.url + url.format(r=hidden), headers=auth(token))
                none = httpx.request(method, server.url + url.format(r=missing), headers=auth(token))
                assert _answer(seen, hidden, "R") == _answer(none, missing, "R"), (url, method, token)


# ---------------------------------------------------------------- 5. names in commit titles


def test_commit_titles_never_name_hidden_files(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    repo_id = new_repo(api, owner[0], "titles")
    commit_files(api, repo_id, {"llama-70b/model-00002-of-00002.safetensors": WEIGHTS},
                 title="Upload llama-70b/model-00002-of-00002.safetensors with huggingface_hub")
    commit_files(api, repo_id, {"notes.txt": b"n"}, title="Add notes")
    put_policy(server, owner[1], repo_id, {"stages": [{"name": "big", "files": ["llama-70b/**"], "releases": []}]})
    _, outsider = server.user()
    for token in (None, outsider):
        listing = httpx.get(f"{server.url}/api/models/{repo_id}/commits/main", headers=auth(token)).text
        assert "llama-70b" not in listing and "model-00002" not in listing
        assert "Add notes" in listing
        # expand=true carries each entry's last commit: its title is withheld the same way.
        commit_files(api, repo_id, {"notes.txt": b"n2"}, title="Update notes next to llama-70b")
        expanded = httpx.get(f"{server.url}/api/models/{repo_id}/tree/main", params={"expand": "true"},
                             headers=auth(token)).text
        assert "llama-70b" not in expanded and "lastCommit" in expanded
    mine = httpx.get(f"{server.url}/api/models/{repo_id}/commits/main", headers=auth(owner[1])).text
    assert "llama-70b/model-00002-of-00002.safetensors" in mine


# ---------------------------------------------------------------- caches, concurrency


def test_only_anonymously_readable_content_is_publicly_cacheable(server: Any, api: HfApi,
                                                                  owner: tuple[str, str]) -> None:
    repo_id = new_repo(api, owner[0], "cache")
    commit_files(api, repo_id, {"model.safetensors": WEIGHTS})
    public = httpx.head(f"{server.url}/{repo_id}/resolve/main/model.safetensors")
    assert public.headers["Cache-Control"].startswith("public")
    api.update_repo_settings(repo_id, gated="auto")
    user, token = server.user()
    with server.db.session() as session:
        from releasehub.access import service as access_service
        from releasehub.repos import service as repos

        repo = repos.find_repo(session, owner[0], repo_id.split("/")[1])
        assert repo is not None
        access_service.grant_access(session, repo, owner[0], user)
    granted = httpx.head(f"{server.url}/{repo_id}/resolve/main/model.safetensors", headers=auth(token))
    assert granted.status_code == 200 and granted.headers["Cache-Control"].startswith("private")
    # The card of a gated repo is open to anyone: it stays public; .gitattributes is gated, as on the Hub.
    commit_files(api, repo_id, {"README.md": b"---\nlicense: mit\n---\n# card\n"})
    card = httpx.head(f"{server.url}/{repo_id}/resolve/main/README.md")
    assert card.status_code == 200 and card.headers["Cache-Control"].startswith("public")
    attributes = httpx.head(f"{server.url}/{repo_id}/resolve/main/.gitattributes")
    assert attributes.status_code == 401 and attributes.headers["x-error-code"] == "GatedRepo"


def test_concurrent_commits_without_a_parent_all_land(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    repo_id = new_repo(api, owner[0], "race")
    results: list[int] = []

    def one(i: int) -> None:
        line = {"key": "file", "value": {"path": f"f{i}.txt", "encoding": "base64",
                                         "content": base64.b64encode(b"x%d" % i).decode()}}
        results.append(raw_commit(server, owner[1], repo_id, line, summary=f"c{i}").status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 8
    files = set(api.list_repo_files(repo_id))
    assert {f"f{i}.txt" for i in range(8)} <= files
    # A commit that names a stale parent is still refused.
    first = api.list_repo_commits(repo_id)[-1].commit_id
    stale = raw_commit(server, owner[1], repo_id, summary="stale", parent=first)
    assert stale.status_code == 412
