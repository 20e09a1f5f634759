"""`hosted`, `keys`, `usage` and `audit export|report` over HTTP: who may do what, and that a refusal
changes nothing.

Attaching an engine is the operator's (a server admin's token); the kill switch and keys are the
repo admins'; another user's key is a missing key; a repo's audit trail is for its admins and the
whole log for server admins. The CLI runs with HF_ENDPOINT/HF_TOKEN, as a user would: in this process
(tests/clirunner.py; it talks HTTP to the live server all the same), and once per test as a process of
its own, where the exit status and stderr a shell sees are what is checked.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from huggingface_hub import HfApi, hf_hub_download

from engine.openai_engine import start_engine, stop_engine
from releasehub.auditlog import log as audit_log
from releasehub.gateway.models import ApiKey, HostedModel
from releasehub.repos.models import Repo
from clirunner import Done, in_process_cli, subprocess_cli

POLICY = {"tiers": [{"name": "public", "components": ["documentation"], "api": {"max_tokens": 8}}]}


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    process, base = start_engine(model="engine-model")
    yield base
    stop_engine(process)


@pytest.fixture(scope="module")
def admin(server: Any) -> str:
    """A server admin's write token."""
    return server.user(admin=True)[1]


def _env(server: Any, token: str) -> dict[str, str]:
    return {"COLUMNS": "200", "HF_ENDPOINT": server.url, "HF_TOKEN": token}


def cli(server: Any, token: str, *args: str) -> Done:
    """The CLI in this process (tests/clirunner.py), against the live server."""
    return in_process_cli(list(args), _env(server, token))


def cli_process(server: Any, token: str, *args: str) -> Done:
    """The CLI as a process of its own, as a user runs it."""
    return subprocess_cli(list(args), _env(server, token))


def ok(done: Done) -> str:
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def refused(done: Done, needle: str) -> None:
    assert done.returncode == 1, done.stderr + done.stdout
    assert needle in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # one line, no traceback


# One TLS context for the test's clients: each new one would load certifi's bundle (~25 ms of CPU) to
# speak plain HTTP to 127.0.0.1.
_TLS = httpx.create_ssl_context()


def http(server: Any, token: str | None) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, verify=_TLS,
                        headers={"Authorization": f"Bearer {token}"} if token else {})


def new_repo(server: Any, owner: tuple[str, str], *, private: bool = False, policy: dict | None = POLICY) -> str:
    api = HfApi(endpoint=server.url, token=owner[1])
    repo_id = f"{owner[0]}/gw-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, private=private)
    api.upload_file(path_or_fileobj=b"weights", path_in_repo="model.safetensors", repo_id=repo_id)
    if policy is not None:
        with http(server, owner[1]) as c:
            assert c.put(f"/api/models/{repo_id}/policy", json=policy).status_code == 200
    return repo_id


def hosted(server: Any, repo_id: str) -> HostedModel | None:
    namespace, name = repo_id.split("/")
    with server.db.session() as session:
        repo = session.query(Repo).filter_by(namespace=namespace, name=name).one()
        row = session.query(HostedModel).filter_by(repo_id=repo.id).one_or_none()
        session.expunge_all()
        return row


def attach(server: Any, admin: str, repo_id: str, engine: str) -> None:
    ok(cli(server, admin, "hosted", "attach", repo_id, "--backend", f"{engine}/v1", "--model", "engine-model"))


def test_only_a_server_admin_attaches_hooks_and_detaches(server: Any, admin: str, owner: tuple[str, str],
                                                         engine: str) -> None:
    repo_id = new_repo(server, owner)
    # The repo's owner is not the operator: the server would connect to whatever URL they name.
    refused(cli_process(server, owner[1], "hosted", "attach", repo_id, "--backend", f"{engine}/v1"), "admin token")
    with http(server, owner[1]) as c:
        answer = c.post(f"/api/models/{repo_id}/hosted", json={"backend": f"{engine}/v1"})
    assert answer.status_code == 403 and answer.headers["x-error-code"] == "Forbidden"
    with http(server, None) as c:
        assert c.post(f"/api/models/{repo_id}/hosted", json={"backend": f"{engine}/v1"}).status_code == 401
    assert hosted(server, repo_id) is None  # nothing attached

    out = ok(cli(server, admin, "hosted", "attach", repo_id, "--backend", f"{engine}/v1", "--model", "engine-model",
                 "--hosted-only"))
    assert f"{repo_id} is served through /v1 by {engine}/v1" in out and "hosted-only" in out
    row = hosted(server, repo_id)
    assert row is not None and row.engine_model == "engine-model" and row.created_by != "operator"

    refused(cli(server, owner[1], "hosted", "hook", repo_id, "--block", "x"), "admin token")
    assert hosted(server, repo_id).blocklist is None  # type: ignore[union-attr]
    out = ok(cli(server, admin, "hosted", "hook", repo_id, "--block", "secret", "--store-prompts"))
    assert "blocklist ['secret']" in out and "prompts stored" in out
    refused(cli(server, owner[1], "hosted", "detach", repo_id), "admin token")
    assert hosted(server, repo_id) is not None
    # A repo that does not exist: a clear answer, for the admin too.
    refused(cli(server, admin, "hosted", "attach", f"{owner[0]}/nothing-here", "--backend", f"{engine}/v1"),
            "not found")
    assert "no longer served" in ok(cli(server, admin, "hosted", "detach", repo_id))
    assert hosted(server, repo_id) is None
    # The audit log names who acted: the admin token's user, not a name typed on the command line.
    with server.db.session() as session:
        actors = {e["action"]: e["actor"] for e in audit_log.iter_events(session, repo=repo_id)
                  if e["action"].startswith("gateway.")}
    assert set(actors) == {"gateway.attached", "gateway.hook_changed", "gateway.detached"}
    assert len(set(actors.values())) == 1 and None not in actors.values()


def test_repo_admins_hold_the_kill_switch(server: Any, admin: str, owner: tuple[str, str], engine: str) -> None:
    repo_id = new_repo(server, owner)
    attach(server, admin, repo_id, engine)
    outsider, outsider_token = server.user()
    refused(cli(server, outsider_token, "hosted", "disable", repo_id, "--reason", "prank"), "may not administer")
    assert hosted(server, repo_id).enabled  # type: ignore[union-attr]
    # A private repo does not exist for someone outside its team.
    private = new_repo(server, owner, private=True)
    attach(server, admin, private, engine)
    with http(server, outsider_token) as c:
        hidden = c.post(f"/api/models/{private}/hosted/disable", json={"reason": "prank"})
        missing = c.post(f"/api/models/{owner[0]}/missing-{uuid.uuid4().hex[:6]}/hosted/disable")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.headers["x-error-code"] == missing.headers["x-error-code"] == "RepoNotFound"
    assert hosted(server, private).enabled  # type: ignore[union-attr]

    user, _ = server.user()
    key = ok(cli(server, owner[1], "keys", "create", user, "--repo", repo_id, "--tier", "public")).splitlines()[-1]
    c = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    ask = {"model": repo_id, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    try:
        c.chat.completions.create(**ask)
        assert "off" in ok(cli_process(server, owner[1], "hosted", "disable", repo_id, "--reason", "incident 7"))
        with pytest.raises(openai.InternalServerError) as off:
            c.chat.completions.create(**ask)
        assert off.value.status_code == 503 and "incident 7" in off.value.message
        assert "on" in ok(cli(server, owner[1], "hosted", "enable", repo_id))
        c.chat.completions.create(**ask)
    finally:
        c.close()
    with server.db.session() as session:
        switched = [e for e in audit_log.iter_events(session, repo=repo_id)
                    if e["action"] in ("gateway.disabled", "gateway.enabled")]
    assert [(e["action"], e["actor"]) for e in switched] == [("gateway.disabled", owner[0]),
                                                             ("gateway.enabled", owner[0])]


def test_keys_are_the_repo_admins_and_anothers_key_is_a_missing_one(server: Any, admin: str,
                                                                    owner: tuple[str, str], engine: str) -> None:
    repo_id = new_repo(server, owner)
    attach(server, admin, repo_id, engine)
    holder, holder_token = server.user()
    stranger, stranger_token = server.user()

    # Only the repo's admins (and server admins) issue keys on it.
    refused(cli(server, stranger_token, "keys", "create", stranger, "--repo", repo_id, "--tier", "public"),
            "may not administer")
    out = ok(cli_process(server, owner[1], "keys", "create", holder, "--repo", repo_id, "--tier", "public",
                         "--name", "ci"))
    secret = out.strip().splitlines()[-1]
    key_id = secret.split(".")[0]
    assert f"created API key {key_id} for {holder}" in out and secret.startswith("rhk_")
    with server.db.session() as session:
        keys = session.query(ApiKey).filter_by(key_id=key_id).all()
        assert len(keys) == 1 and keys[0].created_by == owner[0]

    # Listing: one's own keys; a repo's keys for its admins; another user's for server admins only.
    def listed(token: str, *args: str) -> list[str]:
        lines = ok(cli(server, token, "keys", "list", "--json", *args)).splitlines()
        return [json.loads(line)["key"] for line in lines]

    assert listed(holder_token) == [key_id]
    assert listed(stranger_token) == []
    assert listed(owner[1], "--repo", repo_id) == [key_id]
    refused(cli(server, stranger_token, "keys", "list", "--repo", repo_id), "may not administer")
    refused(cli(server, stranger_token, "keys", "list", "--user", holder), "admin token")
    assert listed(admin, "--user", holder) == [key_id]
    with http(server, holder_token) as c:
        shown = c.get("/api/gateway/keys").json()
    assert shown[0]["state"] == "active" and "secret" not in shown[0] and "secret_hash" not in shown[0]

    # Someone else's key answers word for word as a key that does not exist, and stays valid.
    with http(server, stranger_token) as c:
        theirs = c.delete(f"/api/gateway/keys/{key_id}")
        nobodys = c.delete("/api/gateway/keys/rhk_000000000000")
    assert theirs.status_code == nobodys.status_code == 404
    assert theirs.headers["x-error-code"] == nobodys.headers["x-error-code"]
    assert theirs.json()["error"].replace(key_id, "ID") == nobodys.json()["error"].replace("rhk_000000000000", "ID")
    refused(cli(server, stranger_token, "keys", "revoke", key_id), "not found")
    with http(server, holder_token) as c:
        assert c.get("/api/gateway/keys").json()[0]["state"] == "active"

    # The key's user may revoke it; so may the repo's admins (a whole secret is cut to its id first).
    assert f"revoked {key_id}" in ok(cli(server, holder_token, "keys", "revoke", secret, "--reason", "lost"))
    second = ok(cli(server, admin, "keys", "create", holder, "--repo", repo_id, "--tier", "public")).splitlines()[-1]
    assert "revoked" in ok(cli(server, owner[1], "keys", "revoke", second.split(".")[0]))
    states = {json.loads(line)["key"]: json.loads(line)["state"]
              for line in ok(cli(server, admin, "keys", "list", "--json", "--user", holder)).splitlines()}
    assert states == {key_id: "revoked", second.split(".")[0]: "revoked"}


def _wait_for_download(server: Any, repo_id: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with server.db.session() as session:
            if any(audit_log.iter_events(session, repo=repo_id, actions=["file.downloaded"])):
                return
        time.sleep(0.1)  # downloads are written in batches (every 0.5 s), off the request path
    raise AssertionError("the download was never recorded")


def test_audit_export_and_report_over_http(server: Any, admin: str, owner: tuple[str, str],
                                           tmp_path: Path) -> None:
    repo_id = new_repo(server, owner, policy={})  # no tiers: every file downloads
    reader, reader_token = server.user()
    hf_hub_download(repo_id, "model.safetensors", endpoint=server.url, token=reader_token,
                    cache_dir=str(tmp_path / "cache"))
    _wait_for_download(server, repo_id)
    with server.db.session() as session:
        held = list(audit_log.iter_events(session, repo=repo_id))
        as_csv = io.StringIO(newline="")
        audit_log.export(session, as_csv, repo=repo_id, fmt="csv")
    assert {"repo.created", "revision.pushed", "file.downloaded"} <= {e["action"] for e in held}

    # The repo's admin gets exactly what the log holds, as JSON Lines and as the CSV `export` writes.
    exported = ok(cli(server, owner[1], "audit", "export", "--repo", repo_id))
    assert [json.loads(line) for line in exported.splitlines()] == held
    out = tmp_path / "events.csv"
    done = cli_process(server, owner[1], "audit", "export", "--repo", repo_id, "--format", "csv", "-o", str(out))
    assert done.returncode == 0 and f"wrote {len(held)} events to {out}" in done.stderr, done.stderr
    assert out.read_bytes() == as_csv.getvalue().encode()
    assert len(list(csv.DictReader(io.StringIO(out.read_bytes().decode(), newline="")))) == len(held)
    only = ok(cli(server, owner[1], "audit", "export", "--repo", repo_id, "--action", "file.downloaded",
                  "--since", "1d"))
    assert [json.loads(line)["seq"] for line in only.splitlines()] == [
        e["seq"] for e in held if e["action"] == "file.downloaded"]
    assert ok(cli(server, owner[1], "audit", "export", "--repo", repo_id, "--until", "2000-01-01")) == ""

    report = ok(cli(server, owner[1], "audit", "report", "--repo", repo_id))
    assert f"downloads of {repo_id}" in report and "model.safetensors" in report
    with http(server, owner[1]) as c:
        rows = c.get(f"/api/models/{repo_id}/audit/downloads").json()
    assert rows == [{"revision": rows[0]["revision"], "path": "model.safetensors", "downloads": 1,
                     "downloaders": 1, "bytes": len(b"weights")}]

    # Anyone else: refused with one line; a private repo's trail does not exist for them; nothing written.
    refused(cli(server, reader_token, "audit", "export", "--repo", repo_id), "may not administer")
    refused(cli(server, reader_token, "audit", "report", "--repo", repo_id), "may not administer")
    absent = tmp_path / "absent.jsonl"
    refused(cli(server, reader_token, "audit", "export", "--repo", repo_id, "-o", str(absent)), "may not administer")
    assert not absent.exists()
    private = new_repo(server, owner, private=True)
    with http(server, reader_token) as c:
        assert c.get(f"/api/models/{private}/audit").status_code == 404
        assert c.get(f"/api/models/{private}/audit/downloads").status_code == 404
        assert c.get("/api/audit/export").status_code == 403
    with http(server, None) as c:
        assert c.get(f"/api/models/{repo_id}/audit").status_code == 401
    # The whole log is the server admins': it holds this repo's events among the others.
    refused(cli(server, owner[1], "audit", "export"), "admin token")
    everything = [json.loads(line) for line in ok(cli(server, admin, "audit", "export")).splitlines()]
    assert [e for e in everything if e["repo"] == repo_id][:len(held)] == held
    assert len({e["repo"] for e in everything}) > 1
    bad = cli(server, admin, "audit", "export", "--format", "xml")
    assert bad.returncode == 2 and "jsonl or csv" in bad.stderr
