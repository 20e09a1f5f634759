"""Gated, staged and tiered releases with the unchanged Hub client, the CLI and a real webhook receiver.

Runs on SQLite and PostgreSQL (the `server` fixture).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
import uuid
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

CARD = """---
license: llama3.1
extra_gated_heading: Request access to this model
extra_gated_prompt: You agree to the Llama 3.1 Community License and its acceptable use policy.
extra_gated_fields:
  Name: text
  Country: country
  Affiliation: text
  I want to use this model for:
    type: select
    options: [Research, Education, Commercial]
  I accept the license: checkbox
extra_gated_eu_disallowed: true
---
# A gated model
"""

FIELDS = {"Name": "Ada", "Country": "Norway", "Affiliation": "Uni", "I want to use this model for": "Research",
          "I accept the license": True}


def cli(server: Any, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    return cli_at(server, token, 200, *args)


def cli_at(server: Any, token: str | None, columns: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_ENDPOINT": server.url, "COLUMNS": str(columns)}
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "releasehub", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def make_repo(api: HfApi, owner: str, files: dict[str, bytes], card: str = CARD) -> str:
    repo_id = f"{owner}/gated-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    from huggingface_hub import CommitOperationAdd

    ops = [CommitOperationAdd(path, content) for path, content in {"README.md": card.encode(), **files}.items()]
    with warnings.catch_warnings():
        # The client warns about data files (data/train.parquet) in a model repo: intended here.
        warnings.filterwarnings("ignore", message="It seems that you are about to commit a data file")
        api.create_commit(repo_id, ops, commit_message="release")
    return repo_id


def terms_sha(server: Any, repo_id: str) -> str:
    return str(httpx.get(f"{server.url}/api/models/{repo_id}/access-terms").json()["license"]["sha256"])


def request(server: Any, token: str, repo_id: str, fields: dict[str, Any], **extra: Any) -> httpx.Response:
    body = {"fields": fields, "acceptLicense": True, "licenseSha256": terms_sha(server, repo_id), **extra}
    return httpx.post(f"{server.url}/api/models/{repo_id}/access-request", json=body,
                      headers={"Authorization": f"Bearer {token}"})


def test_manual_gate_review_with_the_hub_client(server: Any, api: HfApi, owner: tuple[str, str],
                                                tmp_path: Path) -> None:
    repo_id = make_repo(api, owner[0], {"model.safetensors": b"\x00" * 1000})
    api.update_repo_settings(repo_id, gated="manual")
    assert api.model_info(repo_id).gated == "manual"
    requester, token = server.user()
    client = HfApi(endpoint=server.url, token=token)

    # Card and file list stay readable; the card downloads; the weights do not.
    info = client.model_info(repo_id)
    assert {s.rfilename for s in info.siblings} == {".gitattributes", "README.md", "model.safetensors"}
    assert info.card_data["extra_gated_heading"] == "Request access to this model"
    hf_hub_download(repo_id, "README.md", endpoint=server.url, token=token, cache_dir=str(tmp_path / "c0"))
    with pytest.raises(GatedRepoError) as anon:
        hf_hub_download(repo_id, "model.safetensors", endpoint=server.url, token=False, cache_dir=str(tmp_path / "c1"))
    assert anon.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as signed:
        hf_hub_download(repo_id, "model.safetensors", endpoint=server.url, token=token, cache_dir=str(tmp_path / "c2"))
    assert signed.value.response.status_code == 403
    assert "releasehub access request" in str(signed.value)
    with pytest.raises(GatedRepoError):
        client.auth_check(repo_id)

    # Without --accept-license the CLI shows the terms and refuses; with it, the request is pending.
    shown = cli(server, token, "access", "request", repo_id)
    assert shown.returncode == 1 and "--accept-license" in shown.stderr and "Llama 3.1" in shown.stdout
    fields = [f"--field={k}={v}" for k, v in FIELDS.items()]
    sent = cli(server, token, "access", "request", repo_id, *fields, "--accept-license")
    assert sent.returncode == 0, sent.stderr
    assert "pending" in sent.stdout
    again = cli(server, token, "access", "request", repo_id, *fields, "--accept-license")
    assert again.returncode == 1 and "already pending" in again.stderr
    status = cli(server, token, "access", "status", repo_id)
    assert "pending" in status.stdout

    pending = list(api.list_pending_access_requests(repo_id))
    assert [r.username for r in pending] == [requester]
    assert pending[0].fields["Affiliation"] == "Uni"
    # The releaser's list: JSON lines for scripts, and at 80 columns one block per request (a header
    # line, then the form's answers) instead of an eight-column table (issue 12).
    listed = cli(server, owner[1], "access", "review", "list", repo_id, "--json")
    assert [json.loads(line)["user"]["user"] for line in listed.stdout.splitlines()] == [requester]
    narrow = cli_at(server, owner[1], 80, "access", "review", "list", repo_id)
    assert narrow.returncode == 0, narrow.stderr
    assert narrow.stdout.splitlines()[0].startswith(f"{requester}  ") and "    Affiliation: Uni" in narrow.stdout
    assert "pending" in narrow.stdout.splitlines()[0]

    # Rejected with a reason the requester sees; then they may ask again (the Hub does not allow it).
    api.reject_access_request(repo_id, requester, rejection_reason="Affiliation could not be confirmed")
    assert [r.username for r in api.list_rejected_access_requests(repo_id)] == [requester]
    status = cli(server, token, "access", "status", repo_id)
    assert "Affiliation could not be confirmed" in status.stdout
    with pytest.raises(GatedRepoError) as rejected:
        hf_hub_download(repo_id, "model.safetensors", endpoint=server.url, token=token, cache_dir=str(tmp_path / "c3"))
    assert "Affiliation could not be confirmed" in str(rejected.value)
    assert request(server, token, repo_id, FIELDS).json()["state"] == "pending"

    api.accept_access_request(repo_id, requester)
    client.auth_check(repo_id)
    path = hf_hub_download(repo_id, "model.safetensors", endpoint=server.url, token=token,
                           cache_dir=str(tmp_path / "c4"))
    assert Path(path).read_bytes() == b"\x00" * 1000
    assert [r.username for r in api.list_accepted_access_requests(repo_id)] == [requester]

    # Cancel: back to pending, access lost. grant_access: access without a request.
    api.cancel_access_request(repo_id, requester)
    with pytest.raises(GatedRepoError):
        client.auth_check(repo_id)
    other, other_token = server.user()
    api.grant_access(repo_id, other)
    HfApi(endpoint=server.url, token=other_token).auth_check(repo_id)

    # A reader of the repo cannot review (403), nor can the requester.
    with pytest.raises(HfHubHTTPError) as forbidden:
        list(client.list_pending_access_requests(repo_id))
    assert forbidden.value.response.status_code == 403


def test_acceptance_records_the_exact_license_text(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    license_text = "My license, version 7.\nNo use for evil.\n"
    repo_id = make_repo(api, owner[0], {"LICENSE": license_text.encode(), "w.safetensors": b"1"})
    api.update_repo_settings(repo_id, gated="auto")
    terms = httpx.get(f"{server.url}/api/models/{repo_id}/access-terms").json()
    assert terms["license"]["sha256"] == hashlib.sha256(license_text.encode()).hexdigest()
    assert terms["license"]["text"] == license_text
    requester, token = server.user()
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{server.url}/api/models/{repo_id}/access-request"
    missing = httpx.post(url, json={"fields": FIELDS}, headers=headers)
    assert (missing.status_code, missing.headers["x-error-code"]) == (400, "LicenseNotAccepted")
    stale = httpx.post(url, json={"fields": FIELDS, "acceptLicense": True, "licenseSha256": "0" * 64}, headers=headers)
    assert (stale.status_code, stale.headers["x-error-code"]) == (409, "LicenseChanged")
    incomplete = httpx.post(url, json={"fields": {"Name": "x"}, "acceptLicense": True,
                                       "licenseSha256": terms["license"]["sha256"]}, headers=headers)
    assert incomplete.status_code == 400 and "'Country' is required" in incomplete.headers["x-error-message"]
    # Nothing was recorded by the refused attempts.
    assert httpx.get(url, headers=headers).json()["state"] == "none"

    granted = request(server, token, repo_id, FIELDS)
    assert granted.status_code == 200 and granted.json()["state"] == "accepted"  # auto
    record = granted.json()
    assert record["license"] == {"id": "llama3.1", "version": "repo", "sha256": terms["license"]["sha256"]}
    assert record["promptSha256"] == hashlib.sha256(terms["prompt"].encode()).hexdigest()

    # The text changes: a new request must accept the new text.
    api.upload_file(path_or_fileobj=b"Version 8.\n", path_in_repo="LICENSE", repo_id=repo_id)
    assert terms_sha(server, repo_id) == hashlib.sha256(b"Version 8.\n").hexdigest()


def test_eligibility_refusal_names_the_rule(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    repo_id = make_repo(api, owner[0], {"w.safetensors": b"1"})
    api.update_repo_settings(repo_id, gated="auto")
    _, token = server.user()
    refused = request(server, token, repo_id, {**FIELDS, "Country": "France"})
    assert refused.status_code == 403 and refused.headers["x-error-code"] == "Ineligible"
    assert "eu_disallowed" in refused.headers["x-error-message"]
    state = httpx.get(f"{server.url}/api/models/{repo_id}/access-request",
                      headers={"Authorization": f"Bearer {token}"}).json()
    assert state["state"] == "rejected" and "European Union" in state["request"]["reason"]
    # A corrected request goes through (auto), and the refusal stays in the review list history.
    assert request(server, token, repo_id, FIELDS).json()["state"] == "accepted"


def test_verified_email_domain_rule(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    repo_id = make_repo(api, owner[0], {"w.safetensors": b"1"}, card="---\nlicense: mit\n---\n")
    api.update_repo_settings(repo_id, gated="auto")
    put = httpx.put(f"{server.url}/api/models/{repo_id}/policy", headers={"Authorization": f"Bearer {owner[1]}"},
                    json={"eligibility": {"email_domains": ["uni.edu"]}})
    assert put.status_code == 200, put.text
    _, unverified = server.user(email="a@uni.edu")
    _, verified = server.user(email="b@cs.uni.edu", email_verified=True)
    assert request(server, unverified, repo_id, {}).headers["x-error-code"] == "Ineligible"
    assert request(server, verified, repo_id, {}).json()["state"] == "accepted"


def test_grant_expiry(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    repo_id = make_repo(api, owner[0], {"w.safetensors": b"1"})
    api.update_repo_settings(repo_id, gated="manual")
    user, token = server.user()
    soon = time.time() + 2
    from datetime import datetime, timezone

    expires = datetime.fromtimestamp(soon, timezone.utc).isoformat()
    past = datetime.fromtimestamp(time.time() - 60, timezone.utc).isoformat()
    refused = httpx.post(f"{server.url}/api/models/{repo_id}/user-access-request/grant",
                         headers={"Authorization": f"Bearer {owner[1]}"}, json={"user": user, "expiresAt": past})
    assert refused.status_code == 400 and "expiry must lie in the future" in refused.text  # no grant born expired
    r = httpx.post(f"{server.url}/api/models/{repo_id}/user-access-request/grant",
                   headers={"Authorization": f"Bearer {owner[1]}"}, json={"user": user, "expiresAt": expires})
    assert r.status_code == 200, r.text
    client = HfApi(endpoint=server.url, token=token)
    client.auth_check(repo_id)
    time.sleep(max(0.0, soon - time.time()) + 0.3)
    with pytest.raises(GatedRepoError) as expired:
        client.auth_check(repo_id)
    assert "expired" in str(expired.value)


def test_internal_visibility(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    org = server.org(f"org-{uuid.uuid4().hex[:6]}", owner[0])
    reader, reader_token = server.user()
    with server.db.session() as session:
        from releasehub.accounts import service as accounts

        accounts.add_member(session, org, reader, "read")
    repo_id = f"{org}/internal-model"
    created = httpx.post(f"{server.url}/api/repos/create", headers={"Authorization": f"Bearer {owner[1]}"},
                         json={"name": repo_id, "visibility": "internal"})
    assert created.status_code == 200, created.text
    _, stranger_token = server.user()
    assert HfApi(endpoint=server.url, token=reader_token).model_info(repo_id).private
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server.url, token=stranger_token).model_info(repo_id)
    # private: the reader no longer sees it; internal in a user namespace makes no sense.
    api.update_repo_settings(repo_id, private=True)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server.url, token=reader_token).model_info(repo_id)
    bad = httpx.post(f"{server.url}/api/repos/create", headers={"Authorization": f"Bearer {owner[1]}"},
                     json={"name": f"{owner[0]}/nope", "visibility": "internal"})
    assert bad.status_code == 400 and "organisation" in bad.headers["x-error-message"]
    assert httpx.get(f"{server.url}/api/models/{owner[0]}/nope").status_code == 401  # rolled back: no repo


STAGED_FILES = {
    "llama-8b/model.safetensors": b"8" * 100,
    "llama-70b/model.safetensors": b"7" * 100,
    "llama-70b/config.json": b"{}",
    "modeling.py": b"print(1)\n",
    "data/train.parquet": b"PAR1",
}


def staged_policy() -> dict[str, Any]:
    return {
        "tiers": [
            {"name": "public", "components": ["documentation", "code", "weights"]},
            {"name": "researcher", "components": ["documentation", "code", "weights", "evaluations"]},
            {"name": "auditor", "components": ["*"], "review": "manual"},
        ],
        "stages": [
            {"name": "large", "files": ["*-70b/*"],
             "releases": [{"audience": "researcher", "at": "now"}, {"audience": "everyone", "at": "+90d"}]},
        ],
    }


def visible_paths(server: Any, repo_id: str, token: str | None) -> dict[str, set[str]]:
    """The file paths each read path reveals to this subject."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = f"{server.url}/api/models/{repo_id}"
    out: dict[str, set[str]] = {}
    tree = httpx.get(f"{base}/tree/main", params={"recursive": "true"}, headers=headers).json()
    out["tree"] = {e["path"] for e in tree if e["type"] == "file"}
    out["tree-dirs"] = {e["path"] for e in tree if e["type"] == "directory"}
    out["siblings"] = {s["rfilename"] for s in httpx.get(base, headers=headers).json()["siblings"]}
    every = [".gitattributes", "README.md", *STAGED_FILES]
    info = httpx.post(f"{base}/paths-info/main", data={"paths": every}, headers=headers).json()
    out["paths-info"] = {e["path"] for e in info if e["type"] == "file"}
    listed = httpx.get(f"{server.url}/api/models", params={"search": repo_id.split("/")[1], "full": "true"},
                       headers=headers).json()
    out["search"] = {s["rfilename"] for m in listed if m["id"] == repo_id for s in m["siblings"]}
    profile = httpx.get(f"{base}/access-profile", headers=headers)
    assert profile.status_code == 200, profile.text
    text = profile.text
    out["access-profile"] = {p for p in every if f'"{p}"' in text or f"{p}:" in text or f" {p}" in text}
    out["resolve"] = set()
    for path in every:
        head = httpx.head(f"{server.url}/{repo_id}/resolve/main/{path}", headers=headers)
        if head.status_code != 404:
            out["resolve"].add(path)
        else:
            assert head.headers["x-error-code"] == "EntryNotFound" and "location" not in head.headers
    return out


def test_staged_tiered_release_hides_files_everywhere(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    repo_id = make_repo(api, owner[0], STAGED_FILES, card="---\nlicense: apache-2.0\n---\n# staged\n")
    api.update_repo_settings(repo_id, gated="auto")
    put = httpx.put(f"{server.url}/api/models/{repo_id}/policy", json=staged_policy(),
                    headers={"Authorization": f"Bearer {owner[1]}"})
    assert put.status_code == 200, put.text

    _, token = server.user()
    public_view = {".gitattributes", "README.md", "llama-8b/model.safetensors", "modeling.py"}
    seen = visible_paths(server, repo_id, token)
    for where in ("tree", "siblings", "paths-info", "search", "resolve"):
        assert seen[where] == public_view, where
    assert seen["access-profile"] <= public_view and "llama-8b/model.safetensors" in seen["access-profile"]
    assert "llama-70b" not in seen["tree-dirs"] and "data" not in seen["tree-dirs"]

    # A hidden file answers exactly as a file that never existed.
    hidden = httpx.get(f"{server.url}/{repo_id}/resolve/main/llama-70b/model.safetensors",
                       headers={"Authorization": f"Bearer {token}"})
    ghost = httpx.get(f"{server.url}/{repo_id}/resolve/main/llama-70b/ghost.safetensors",
                      headers={"Authorization": f"Bearer {token}"})
    assert hidden.status_code == ghost.status_code == 404
    assert hidden.headers["x-error-message"].replace("model", "ghost") == ghost.headers["x-error-message"]
    with pytest.raises(EntryNotFoundError):
        HfApi(endpoint=server.url, token=token).hf_hub_download(repo_id, "llama-70b/model.safetensors")
    info_hidden = httpx.get(f"{server.url}/api/models/{repo_id}/tree/main/llama-70b",
                            headers={"Authorization": f"Bearer {token}"})
    info_ghost = httpx.get(f"{server.url}/api/models/{repo_id}/tree/main/llama-405b",
                           headers={"Authorization": f"Bearer {token}"})
    assert info_hidden.status_code == info_ghost.status_code == 404

    # The researcher tier (auto-granted) sees the 70b stage today; the auditor tier needs review.
    assert request(server, token, repo_id, {}, tier="researcher").json()["state"] == "accepted"
    seen = visible_paths(server, repo_id, token)
    assert seen["tree"] == public_view | {"llama-70b/model.safetensors", "llama-70b/config.json"}
    assert seen["resolve"] == seen["tree"] == seen["siblings"] == seen["paths-info"] == seen["search"]
    assert request(server, token, repo_id, {}, tier="auditor").json()["state"] == "pending"
    # The owner sees everything, always.
    assert visible_paths(server, repo_id, owner[1])["tree"] == {".gitattributes", "README.md", *STAGED_FILES}


def test_invalid_policy_changes_nothing(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    repo_id = make_repo(api, owner[0], {"w.safetensors": b"1"})
    headers = {"Authorization": f"Bearer {owner[1]}"}
    before = httpx.get(f"{server.url}/api/models/{repo_id}/policy", headers=headers).json()
    bad = httpx.put(f"{server.url}/api/models/{repo_id}/policy", headers=headers,
                    json={"gated": "manual", "tiers": [{"name": "x", "components": ["nonsense"]}]})
    assert bad.status_code == 400 and "unknown component" in bad.headers["x-error-message"]
    assert httpx.get(f"{server.url}/api/models/{repo_id}/policy", headers=headers).json() == before
    _, stranger = server.user()
    denied = httpx.get(f"{server.url}/api/models/{repo_id}/policy", headers={"Authorization": f"Bearer {stranger}"})
    assert denied.status_code == 403


def test_policy_from_the_cli_and_the_card(server: Any, api: HfApi, owner: tuple[str, str], tmp_path: Path) -> None:
    repo_id = make_repo(api, owner[0], {"w.safetensors": b"1"}, card="---\nlicense: mit\n---\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text("gated: manual\ngrant_days: 30\neligibility:\n  min_age: 18\n"
                      "gate:\n  fields: {Name: text, Date of birth: date_picker}\n")
    result = cli(server, owner[1], "policy", "set", repo_id, str(policy))
    assert result.returncode == 0, result.stderr
    shown = cli(server, owner[1], "policy", "show", repo_id, "--json")
    doc = json.loads(shown.stdout)
    assert doc["gated"] == "manual" and doc["grant_days"] == 30 and doc["eligibility"] == {"min_age": 18}
    # A card on main with gate fields updates the policy; the rest stays.
    api.upload_file(path_or_fileobj=CARD.encode(), path_in_repo="README.md", repo_id=repo_id)
    doc = json.loads(cli(server, owner[1], "policy", "show", repo_id, "--json").stdout)
    assert doc["gate"]["heading"] == "Request access to this model"
    assert doc["eligibility"] == {"eu_disallowed": True} and doc["grant_days"] == 30
    # A broken policy in the card is reported as the card's error and not applied.
    api.upload_file(path_or_fileobj=b"---\nreleasehub:\n  tiers: nope\n---\n", path_in_repo="README.md",
                    repo_id=repo_id)
    info = httpx.get(f"{server.url}/api/models/{repo_id}", headers={"Authorization": f"Bearer {owner[1]}"}).json()
    assert "was not applied" in info["cardError"]
    # The card's policy problems are the team's: an outsider sees the card, not its policy's errors.
    assert "cardError" not in httpx.get(f"{server.url}/api/models/{repo_id}").json()
    assert json.loads(cli(server, owner[1], "policy", "show", repo_id, "--json").stdout)["grant_days"] == 30


def test_a_writers_card_changes_the_form_not_who_gets_access(server: Any, owner: tuple[str, str]) -> None:
    """Only an admin's card may change what decides access; a writer's card changes the request form."""
    from releasehub.accounts import service as accounts

    org = server.org(f"org-{uuid.uuid4().hex[:6]}", owner[0])
    writer, writer_token = server.user()
    with server.db.session() as session:
        accounts.add_member(session, org, writer, "write")
    repo_id = f"{org}/tiered"
    admin_api, writer_api = HfApi(endpoint=server.url, token=owner[1]), HfApi(endpoint=server.url, token=writer_token)
    admin_api.create_repo(repo_id)
    admin_api.upload_file(path_or_fileobj=b"w", path_in_repo="model.safetensors", repo_id=repo_id)
    admin_api.update_repo_settings(repo_id, gated="manual")
    headers = {"Authorization": f"Bearer {owner[1]}"}
    policy = {"tiers": [{"name": "public", "components": ["documentation"]},
                        {"name": "researcher", "components": ["documentation", "weights"]}]}
    assert httpx.put(f"{server.url}/api/models/{repo_id}/policy", json=policy, headers=headers).status_code == 200
    before = httpx.get(f"{server.url}/api/models/{repo_id}/policy", headers=headers).json()

    opened = ("---\nextra_gated_heading: Ask the lab\nextra_gated_fields:\n  Age: text\nreleasehub:\n  tiers:\n"
              "    - name: public\n"
              "      components: [documentation, weights]\n  eligibility:\n    min_age: 13\n---\n")
    writer_api.upload_file(path_or_fileobj=opened.encode(), path_in_repo="README.md", repo_id=repo_id)
    after = httpx.get(f"{server.url}/api/models/{repo_id}/policy", headers=headers).json()
    assert after["tiers"] == before["tiers"] and "eligibility" not in after  # nothing that decides access
    assert after["gate"]["heading"] == "Ask the lab"                           # the form's text is the writer's
    error = httpx.get(f"{server.url}/api/models/{repo_id}", headers=headers).json()["cardError"]
    assert "eligibility, tiers" in error and "admin role" in error and writer in error
    with pytest.raises((GatedRepoError, EntryNotFoundError)):  # still out of a stranger's reach
        HfApi(endpoint=server.url, token=server.user()[1]).hf_hub_download(repo_id, "model.safetensors")

    # The same card from the admin applies whole.
    admin_api.upload_file(path_or_fileobj=(opened + "\n").encode(), path_in_repo="README.md", repo_id=repo_id)
    applied = httpx.get(f"{server.url}/api/models/{repo_id}/policy", headers=headers).json()
    assert applied["tiers"][0]["components"] == ["documentation", "weights"]
    assert applied["eligibility"] == {"min_age": 13}
    assert "cardError" not in httpx.get(f"{server.url}/api/models/{repo_id}", headers=headers).json()


class Receiver:
    def __init__(self) -> None:
        self.events: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with outer.arrived:
                    outer.events.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    outer.arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 20) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.events) < count and time.monotonic() < deadline:
                self.arrived.wait(timeout=0.5)
        return list(self.events)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.httpd.shutdown()
    r.httpd.server_close()


def test_webhooks_are_signed_and_delivered(server: Any, api: HfApi, owner: tuple[str, str],
                                           receiver: Receiver) -> None:
    repo_id = make_repo(api, owner[0], {"w.safetensors": b"1"})
    api.update_repo_settings(repo_id, gated="manual")
    headers = {"Authorization": f"Bearer {owner[1]}"}
    hook = httpx.post(f"{server.url}/api/models/{repo_id}/webhooks", headers=headers,
                      json={"url": receiver.url, "events": ["access.requested", "access.accepted", "repo.revision",
                                                            "access.revoked"]})
    assert hook.status_code == 200, hook.text
    secret = hook.json()["secret"]
    requester, token = server.user()
    request(server, token, repo_id, FIELDS)
    api.accept_access_request(repo_id, requester)
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="notes.txt", repo_id=repo_id)
    api.reject_access_request(repo_id, requester, rejection_reason="licence breach")
    events = receiver.wait_for(4)
    names = [h["x-releasehub-event"] for h, _ in events]
    assert sorted(names) == sorted(["access.requested", "access.accepted", "repo.revision", "access.revoked"])
    for headers_, body in events:
        signed = f"{headers_['x-releasehub-timestamp']}.".encode() + body
        expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers_["x-releasehub-signature"], expected)
        payload = json.loads(body)
        assert payload["repo"] == repo_id
    revoked = next(json.loads(b) for h, b in events if h["x-releasehub-event"] == "access.revoked")
    assert revoked["data"]["reason"] == "licence breach" and revoked["data"]["user"] == requester


def test_audit_trail_records_and_verifies(server: Any, api: HfApi, owner: tuple[str, str], tmp_path: Path) -> None:
    repo_id = make_repo(api, owner[0], {"w.safetensors": b"x" * 10})
    api.update_repo_settings(repo_id, gated="auto")
    requester, token = server.user()
    request(server, token, repo_id, FIELDS)
    hf_hub_download(repo_id, "w.safetensors", endpoint=server.url, token=token, cache_dir=str(tmp_path / "c"))
    env_db = ["--database-url", server.database_url]
    deadline = time.monotonic() + 20
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        # Over HTTP, as the repo's owner (its admin): `audit export` talks to the server.
        out = subprocess.run([sys.executable, "-m", "releasehub", "audit", "export", "--repo", repo_id],
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "HF_ENDPOINT": server.url, "HF_TOKEN": owner[1]})
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        if any(r["action"] == "file.downloaded" for r in rows):
            break
        time.sleep(0.5)  # downloads are written in batches, off the request path
    actions = [r["action"] for r in rows]
    for expected in ("repo.created", "revision.pushed", "policy.changed", "access.requested", "access.accepted",
                     "file.downloaded"):
        assert expected in actions, (expected, actions)
    requested = next(r for r in rows if r["action"] == "access.requested")
    assert requested["actor"] == requester and len(requested["details"]["license_sha256"]) == 64
    download = next(r for r in rows if r["action"] == "file.downloaded")
    assert (download["path"], download["bytes"], download["actor"]) == ("w.safetensors", 10, requester)
    assert len(download["revision"]) == 40

    verify = subprocess.run([sys.executable, "-m", "releasehub", "audit", "verify", *env_db],
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "intact" in verify.stdout
