"""Property: over random policies, grants and subjects, no web page reveals a file `decide` hides.

The pages are fetched from the real server as a browser would (signed in by a session cookie from
the sign-in form) and as a script would (a Bearer token). Every page of the repo (the model page,
each folder, each file, the history, each commit, the access profile, the gate and the list) must
name no hidden path, folder or file; the page of a hidden file is the page of a missing one.
"""

from __future__ import annotations

import re
import uuid
import warnings
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from huggingface_hub import CommitOperationAdd, HfApi

from releasehub.access import Grant, RepoPolicy, file_visible
from releasehub.access.models import AccessRequest
from releasehub.access.policy import compile_rules, parse_policy
from releasehub.accounts import sessions
from releasehub.accounts.models import User
from releasehub.db import utcnow
from releasehub.repos.models import Repo

from test_access import STAGED_FILES
from test_leaks import ALL, _absolute, _at, grants, policies

PASSWORD = "a long test password"


def hidden_markers(hidden: set[str], visible: set[str]) -> set[str]:
    """Strings that would name a hidden file on a page: its path, and folders only hidden files hold."""
    markers = set(hidden)
    visible_dirs = {p.rsplit("/", 1)[0] for p in visible if "/" in p}
    for path in hidden:
        if "/" in path:
            folder = path.rsplit("/", 1)[0]
            if folder not in visible_dirs:
                markers |= {f"/{folder}/", f"/{folder}\"", f">{folder}<", f">{folder}/<"}
    return markers


def _browser(server: Any, user: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    answer = client.post("/login", data={"csrf_token": token.group(1), "username": user, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return client


def page_urls(repo_id: str, head: str) -> list[str]:
    folders = sorted({p.rsplit("/", 1)[0] for p in ALL if "/" in p})
    return [f"/{repo_id}", f"/{repo_id}/tree/main", *[f"/{repo_id}/tree/main/{d}" for d in folders],
            *[f"/{repo_id}/blob/main/{p}" for p in sorted(ALL)], f"/{repo_id}/commits/main",
            f"/{repo_id}/commit/{head}", f"/{repo_id}/access-profile", f"/{repo_id}/access",
            f"/models?search={repo_id.split('/')[1]}", f"/compare?models={repo_id}"]


def test_no_page_reveals_what_decide_hides(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    repo_id = f"{owner[0]}/pages-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    ops = [CommitOperationAdd(p, c) for p, c in {"README.md": b"---\nlicense: mit\n---\n", **STAGED_FILES}.items()]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="It seems that you are about to commit a data file")
        head = api.create_commit(repo_id, ops, commit_message="Upload " + ", ".join(sorted(STAGED_FILES))).oid
    user, token = server.user()
    with server.db.session() as session:
        sessions.set_password(session, user, PASSWORD)
        repo_pk = session.query(Repo).filter_by(namespace=owner[0], name=repo_id.split("/")[1]).one().id
        user_pk = session.query(User).filter_by(name=user).one().id
    clients = {"anonymous": httpx.Client(base_url=server.url), "cookie": _browser(server, user),
               "token": httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})}
    missing_page = {}
    for how, client in clients.items():
        missing_page[how] = client.get(f"/{repo_id}/blob/main/no/such-file.bin")
        assert missing_page[how].status_code == 404

    @settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(policy=policies, grant=grants, how=st.sampled_from(["anonymous", "cookie", "token"]),
           gated=st.sampled_from([False, "auto"]))
    def check(policy: dict[str, Any], grant: tuple[str, str, str | None] | None, how: str, gated: Any) -> None:
        doc = {**_absolute(policy), "gated": gated}
        put = httpx.put(f"{server.url}/api/models/{repo_id}/policy", json=doc,
                        headers={"Authorization": f"Bearer {owner[1]}"})
        assert put.status_code == 200, put.text
        with server.db.session() as session:
            session.query(AccessRequest).filter_by(repo_id=repo_pk).delete()
            if grant is not None:
                status, tier, expiry = grant
                session.add(AccessRequest(request_id=uuid.uuid4().hex, repo_id=repo_pk, user_id=user_pk,
                                          status=status, tier=tier if "tiers" in policy else None,
                                          expires_at=_at(expiry) if expiry else None))
        now = utcnow()
        local = RepoPolicy(repo_id, owner[0], "public", gated or None, compile_rules(parse_policy(doc, now)))
        subject_grant = None
        if grant is not None and how != "anonymous":
            status, tier, expiry = grant
            subject_grant = Grant(status, tier if "tiers" in policy else None, _at(expiry) if expiry else None)
        visible = {p for p in ALL if file_visible(local, subject_grant, now, p)}
        markers = hidden_markers(ALL - visible, visible)
        client = clients[how]
        for url in page_urls(repo_id, head):
            page = client.get(url)
            assert page.status_code < 500, (url, page.text[:500])
            named = [m for m in markers if m in page.text]
            assert not named, (url, named, doc, grant, how)
            path = url.split("/blob/main/", 1)[1] if "/blob/main/" in url else None
            if path is not None and path not in visible:
                expected = missing_page[how]
                assert page.status_code == 404, (url, doc, grant, how)
                assert page.text.replace(path, "P") == expected.text.replace("no/such-file.bin", "P"), url

    try:
        check()
    finally:
        for client in clients.values():
            client.close()
