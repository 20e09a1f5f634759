"""Property: over random policies, grants, subjects and times, no endpoint reveals a file `decide` hides.

Each example sets a random staged and tiered policy on a real server, gives the subject a
random grant, and asks every read path (tree, siblings, paths-info, search, resolve) which
files exist; the answer must be exactly the files that the pure `file_visible` allows. The
commit list names no hidden file, and from a repo of their own the subject can neither learn
that the server holds a file's content (the LFS batch asks for the bytes; the single-pass
upload declaring its sha256 answers as for a hash never stored) nor name it in a commit (a
cross-repo reference), whatever they may see.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import warnings
from datetime import timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from huggingface_hub import CommitOperationAdd, HfApi

from releasehub.access import Grant, RepoPolicy, file_visible
from releasehub.access.models import AccessRequest
from releasehub.access.policy import compile_rules, parse_policy
from releasehub.accounts.models import User
from releasehub.db import utcnow
from releasehub.repos.models import Repo

from test_access import STAGED_FILES, visible_paths

ALL = {".gitattributes", "README.md", *STAGED_FILES}
TIERS = ["public", "researcher", "auditor"]
COMPONENT_SETS = [["documentation"], ["documentation", "code"], ["weights", "code"], ["*"], ["data", "weights"]]

releases = st.lists(st.fixed_dictionaries({
    "audience": st.sampled_from(["everyone", "granted", *TIERS]),
    "at": st.sampled_from(["-10d", "+10d"]),
}), max_size=2)
stages = st.lists(st.fixed_dictionaries({
    "name": st.sampled_from(["a", "b"]),
    "files": st.sampled_from([["*-70b/*"], ["*.safetensors"], ["data/**"], ["llama-8b/*", "modeling.py"]]).map(list),
    "releases": releases,
}), max_size=2)
tiers = st.lists(st.sampled_from(COMPONENT_SETS), min_size=3, max_size=3).map(
    lambda comps: [{"name": n, "components": c} for n, c in zip(TIERS, comps)])
policies = st.fixed_dictionaries({"stages": stages}, optional={"tiers": tiers})
grants = st.one_of(st.none(), st.tuples(st.sampled_from(["pending", "accepted", "rejected"]),
                                        st.sampled_from(TIERS), st.sampled_from([None, "-1d", "+30d"])))


def _at(offset: str) -> Any:
    now = utcnow()
    return now + timedelta(days=int(offset[:-1])) if offset else None


def _absolute(policy: dict[str, Any]) -> dict[str, Any]:
    """Offsets become instants; without tiers, a tier audience becomes `granted` (a tier name would be invalid)."""
    def audience(name: str) -> str:
        return name if "tiers" in policy or name in ("everyone", "granted") else "granted"

    return {**policy, "stages": [
        {**s, "releases": [{"audience": audience(r["audience"]), "at": _at(r["at"]).isoformat()} for r in s["releases"]]}
        for s in policy["stages"]]}


def test_no_endpoint_reveals_what_decide_hides(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    repo_id = f"{owner[0]}/leak-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    ops = [CommitOperationAdd(p, c) for p, c in {"README.md": b"---\nlicense: mit\n---\n", **STAGED_FILES}.items()]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="It seems that you are about to commit a data file")
        # The title names every file, as `upload_folder`'s titles do.
        api.create_commit(repo_id, ops, commit_message="Upload " + ", ".join(sorted(STAGED_FILES)))
    user, token = server.user()
    own = f"{user}/own-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.url, token=token).create_repo(own)
    oids = {p: hashlib.sha256(c).hexdigest() for p, c in STAGED_FILES.items()}
    with server.db.session() as session:
        repo = session.query(Repo).filter_by(namespace=owner[0], name=repo_id.split("/")[1]).one()
        repo_pk = repo.id
        user_pk = session.query(User).filter_by(name=user).one().id

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(policy=policies, grant=grants, anonymous=st.booleans(), gated=st.sampled_from([False, "auto"]))
    def check(policy: dict[str, Any], grant: tuple[str, str, str | None] | None, anonymous: bool,
              gated: Any) -> None:
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
        if grant is not None and not anonymous:
            status, tier, expiry = grant
            subject_grant = Grant(status, tier if "tiers" in policy else None, _at(expiry) if expiry else None)
        expected = {p for p in ALL if file_visible(local, subject_grant, now, p)}
        seen = visible_paths(server, repo_id, None if anonymous else token)
        for where in ("tree", "siblings", "paths-info", "search", "resolve"):
            assert seen[where] == expected, (where, doc, grant, anonymous)
        dirs = {p.rsplit("/", 1)[0] for p in expected if "/" in p}
        assert seen["tree-dirs"] == dirs
        # The access profile names no file the subject may not see (its cache is keyed by the view).
        assert seen["access-profile"] <= expected, (doc, grant, anonymous)
        headers = {} if anonymous else {"Authorization": f"Bearer {token}"}
        commits = httpx.get(f"{server.url}/api/models/{repo_id}/commits/main", headers=headers).text
        assert not [p for p in ALL - expected if p in commits], (doc, grant, anonymous)
        batch = httpx.post(f"{server.url}/{own}.git/info/lfs/objects/batch", headers={
            "Authorization": f"Bearer {token}"}, json={"operation": "upload", "objects": [
                {"oid": oid, "size": len(STAGED_FILES[p])} for p, oid in oids.items()]}).json()
        assert all("actions" in o for o in batch["objects"]), batch
        # Declaring a file's sha256 to the single-pass upload (`/blobs?sha256=`) with other bytes
        # answers exactly as for a hash the server never stored, and claims nothing (the commit
        # below is still refused).
        never = "0" * 64
        for oid in oids.values():
            answers = [httpx.post(f"{server.url}/api/models/{own}/blobs", params={"size": 5, "sha256": named},
                                  content=b"other", headers={"Authorization": f"Bearer {token}"})
                       for named in (oid, never)]
            assert [a.status_code for a in answers] == [400, 400], [a.text for a in answers]
            assert answers[0].text.replace(oid, never) == answers[1].text
            assert answers[0].headers["X-Error-Message"].replace(oid, never) == answers[1].headers["X-Error-Message"]
        lines = [{"key": "header", "value": {"summary": "claim"}}] + [
            {"key": "lfsFile", "value": {"path": f"f{i}", "oid": oid, "size": len(STAGED_FILES[p])}}
            for i, (p, oid) in enumerate(oids.items())]
        claim = httpx.post(f"{server.url}/api/models/{own}/commit/main", headers={
            "Authorization": f"Bearer {token}"}, content="\n".join(json.dumps(x) for x in lines).encode())
        assert claim.status_code == 400 and claim.headers["X-Error-Code"] == "BadRequest", claim.text
        # A cross-repo copy (lfs-files/duplicate) claims exactly the files the subject may download now.
        target = f"{user}/dup-{uuid.uuid4().hex[:6]}"
        httpx.post(f"{server.url}/api/repos/create", json={"name": target.split("/")[1]},
                   headers={"Authorization": f"Bearer {token}"}).raise_for_status()
        dup = httpx.post(f"{server.url}/api/models/{repo_id}/lfs-files/duplicate", headers={
            "Authorization": f"Bearer {token}"}, json={"target": {"type": "model", "name": target},
                                                       "files": [{"sha256": oid} for oid in oids.values()]})
        # The user's own view (the copy is made with their token, also in the anonymous examples).
        user_grant = None
        if grant is not None:
            status, tier, expiry = grant
            user_grant = Grant(status, tier if "tiers" in policy else None, _at(expiry) if expiry else None)
        active = user_grant is not None and user_grant.active(now)
        downloadable = {p for p in STAGED_FILES if file_visible(local, user_grant, now, p) and (not gated or active)}
        if dup.status_code == 200:
            refused = {f["sha256"] for f in dup.json()["failed"]}
            assert {p for p, oid in oids.items() if oid not in refused} == downloadable, (doc, grant)
        else:
            assert dup.status_code in (401, 403) and not downloadable, (dup.text, doc, grant)

    check()
