"""Xet xorbs are kept at least the retention after their last use, then collected when no file uses
them; records of Xet files never committed go after the retention too, and their xorbs follow.

The collector runs in this process against the server's database and store (as in
test_object_store.py). Time is moved by back-dating rows (`last_used_at`, `created_at`) or by
the collector's `retention_seconds`; each module run has a server of its own, on SQLite and on a
PostgreSQL database of its own, so that collecting everything old touches no other test.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Iterator

import httpx
import pytest
from conftest import PG_ADMIN_URL, ServerProcess, _pg_available, start_server, stop_server
from huggingface_hub import HfApi
from sqlalchemy import func, select, update

from releasehub.auditlog.models import AuditEvent
from releasehub.collector import collect
from releasehub.repos import service as repos
from releasehub.services import Services
from releasehub.settings import Settings
from releasehub.xet import service as xet_service
from releasehub.xet.hashing import chunk_hash, file_hash, hash_from_hex, hash_hex, verification_hash, xorb_hash
from releasehub.xet.models import XetFile, XetFileXorb, XetXorb, XetXorbClaim, XetXorbSender
from releasehub.xet.shard import FileInfo, Term, build_shard
from releasehub.xet.xorb import LZ4, build_xorb

DAY = 86400
OLD = timedelta(days=22)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gc_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    database_url = ""
    if request.param == "postgres":
        if not _pg_available():
            if os.environ.get("CI"):
                pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}; CI needs it.")
            pytest.skip("PostgreSQL is not reachable")
        import psycopg

        name = f"releasehub_xetgc_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        database_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    proc = start_server(tmp_path_factory.mktemp(f"xet-gc-{request.param}"), database_url,
                        extra_env={"RELEASEHUB_GC_INTERVAL_SECONDS": "0"})
    yield proc
    stop_server(proc)
    if database_url:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def services(gc_server: ServerProcess) -> Iterator[Services]:
    """The server's services, opened beside it (same database, same store)."""
    settings = Settings.from_env({"RELEASEHUB_DATA_DIR": str(gc_server.data_dir),
                                  "RELEASEHUB_DATABASE_URL": gc_server.database_url})
    opened = Services.build(settings, migrate=False)
    yield opened
    opened.close()


class Upload:
    """A client-like upload built by hand: one xorb of random chunks and a shard of one file."""

    def __init__(self, seed: int | None = None, sizes: tuple[int, ...] = (40_000, 25_000)) -> None:
        rng = random.Random(seed if seed is not None else secrets.randbits(64))
        self.chunks = [rng.randbytes(n) for n in sizes]
        self.pairs = [(chunk_hash(c), len(c)) for c in self.chunks]
        self.xorb = build_xorb(self.chunks, LZ4)
        self.hash = hash_hex(xorb_hash(self.pairs))
        self.content = b"".join(self.chunks)
        self.sha256 = hashlib.sha256(self.content).hexdigest()

    def shard(self) -> bytes:
        term = Term(hash_from_hex(self.hash), len(self.content), 0, len(self.chunks))
        info = FileInfo(file_hash(self.pairs), [term], [verification_hash([h for h, _ in self.pairs])],
                        hash_from_hex(self.sha256))
        return build_shard([info])


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _repo(server: ServerProcess) -> tuple[str, str, dict[str, str]]:
    """A fresh repo: (repo_id, owner's token, CAS write headers)."""
    user, token = server.user()
    repo_id = f"{user}/xet-gc-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.url, token=token).create_repo(repo_id)
    return repo_id, token, _cas(server, repo_id, token)


def _cas(server: ServerProcess, repo_id: str, token: str) -> dict[str, str]:
    answer = httpx.get(f"{server.url}/api/models/{repo_id}/xet-write-token/main", headers=_auth(token))
    assert answer.status_code == 200, answer.text
    return _auth(answer.json()["accessToken"])


def _send_xorb(server: ServerProcess, cas: dict[str, str], up: Upload) -> bool:
    answer = httpx.post(f"{server.url}/v1/xorbs/default/{up.hash}", content=up.xorb, headers=cas, timeout=60)
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["was_inserted"])


def _send_shard(server: ServerProcess, cas: dict[str, str], up: Upload) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/shards", content=up.shard(), headers=cas, timeout=60)


def _commit(server: ServerProcess, repo_id: str, token: str, files: dict[str, Upload]) -> httpx.Response:
    lines = ['{"key":"header","value":{"summary":"xet files"}}']
    lines += [json.dumps({"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": up.sha256,
                                                       "size": len(up.content)}}) for path, up in files.items()]
    return httpx.post(f"{server.url}/api/models/{repo_id}/commit/main", content="\n".join(lines) + "\n",
                      headers={**_auth(token), "Content-Type": "application/x-ndjson"}, timeout=60)


def _age(server: ServerProcess, xorbs: tuple[str, ...] = (), repo_id: str | None = None, by: timedelta = OLD) -> None:
    """Make xorbs last used, and a repo's Xet file records created, `by` ago."""
    when = datetime.now(timezone.utc) - by
    with server.db.session() as session:
        if xorbs:
            session.execute(update(XetXorb).where(XetXorb.hash.in_(list(xorbs))).values(last_used_at=when))
        if repo_id is not None:
            session.execute(update(XetFile).where(XetFile.repo_id == _pk(server, repo_id)).values(created_at=when))


def _pk(server: ServerProcess, repo_id: str) -> int:
    namespace, name = repo_id.split("/")
    with server.db.session() as session:
        repo = repos.find_repo(session, namespace, name)
        assert repo is not None
        return repo.id


def _xorb_state(server: ServerProcess, services: Services, hex_hash: str) -> dict[str, object]:
    with server.db.session() as session:
        row = session.get(XetXorb, hex_hash)
        return {
            "row": row is not None,
            "last_used_at": row.last_used_at if row is not None else None,
            "claims": session.scalar(select(func.count()).select_from(XetXorbClaim)
                                     .where(XetXorbClaim.xorb_hash == hex_hash)),
            "senders": session.scalar(select(func.count()).select_from(XetXorbSender)
                                      .where(XetXorbSender.xorb_hash == hex_hash)),
            "bytes": services.store.object_size(xet_service.XORBS, hex_hash),
        }


def _gone(server: ServerProcess, services: Services, hex_hash: str) -> bool:
    return _xorb_state(server, services, hex_hash) == {"row": False, "last_used_at": None, "claims": 0,
                                                      "senders": 0, "bytes": None}


def _young(server: ServerProcess, hex_hash: str) -> bool:
    with server.db.session() as session:
        row = session.get(XetXorb, hex_hash)
        assert row is not None
        return datetime.now(timezone.utc) - row.last_used_at < timedelta(minutes=5)


def test_a_xorb_a_committed_file_uses_is_never_collected(gc_server: ServerProcess, services: Services) -> None:
    repo_id, token, cas = _repo(gc_server)
    up = Upload()
    assert _send_xorb(gc_server, cas, up)
    assert _send_shard(gc_server, cas, up).status_code == 200
    assert _commit(gc_server, repo_id, token, {"weights.bin": up}).status_code == 200
    _age(gc_server, (up.hash,), repo_id, by=timedelta(days=3650))
    for result in (collect(services), collect(services, grace_seconds=0, retention_seconds=0)):
        assert up.hash not in result.removed_xorbs and up.sha256 not in result.removed
    state = _xorb_state(gc_server, services, up.hash)
    assert state["row"] and state["bytes"] == len(up.xorb) and state["claims"] == 1
    with gc_server.db.session() as session:
        assert session.get(XetFile, (_pk(gc_server, repo_id), hash_hex(file_hash(up.pairs)))) is not None
    answer = httpx.get(f"{gc_server.url}/{repo_id}/resolve/main/weights.bin", headers=_auth(token), timeout=60)
    assert answer.status_code == 200 and answer.content == up.content
    assert "x-xet-hash" in answer.headers


def test_an_old_unused_xorb_is_collected_and_a_young_one_kept(gc_server: ServerProcess, services: Services) -> None:
    repo_id, token, cas = _repo(gc_server)
    old, young = Upload(), Upload()
    assert _send_xorb(gc_server, cas, old) and _send_xorb(gc_server, cas, young)
    _age(gc_server, (old.hash,))
    result = collect(services)
    assert result.retention_seconds == 21 * DAY
    assert old.hash in result.removed_xorbs and young.hash not in result.removed_xorbs
    assert result.xorbs >= 1 and result.xorb_bytes >= len(old.xorb)
    assert _gone(gc_server, services, old.hash)
    kept = _xorb_state(gc_server, services, young.hash)
    assert kept["row"] and kept["bytes"] == len(young.xorb) and kept["claims"] == 1 and kept["senders"] == 1
    # A shard naming the collected xorb reconstructs nothing: refused, saying to upload it again.
    refused = _send_shard(gc_server, cas, old)
    assert refused.status_code == 400 and "upload" in refused.headers["X-Error-Message"].lower()
    with gc_server.db.session() as session:
        assert session.scalar(select(func.count()).select_from(XetFile)
                              .where(XetFile.repo_id == _pk(gc_server, repo_id))) == 0
    # As the client does then: the xorb again (new to the server), then the shard.
    assert _send_xorb(gc_server, cas, old) is True
    assert _send_shard(gc_server, cas, old).status_code == 200


def test_a_re_upload_a_shard_or_a_dedup_answer_makes_an_old_xorb_young(gc_server: ServerProcess,
                                                                       services: Services) -> None:
    repo_id, token, cas = _repo(gc_server)
    resent, offered, shared, untouched = Upload(), Upload(), Upload(), Upload()
    for up in (resent, offered, shared, untouched):
        assert _send_xorb(gc_server, cas, up)
    hashes = [up.hash for up in (resent, offered, shared, untouched)]
    _age(gc_server, tuple(hashes))
    assert not any(_young(gc_server, h) for h in hashes)
    assert _send_xorb(gc_server, cas, resent) is False  # was_inserted: false
    assert xet_service.touch_xorbs(services, [offered.hash, "0" * 64]) == 1  # what a dedup answer calls
    assert _send_shard(gc_server, cas, shared).status_code == 200  # an upload whose commit has not come yet
    assert [_young(gc_server, h) for h in hashes] == [True, True, True, False]
    result = collect(services)
    assert untouched.hash in result.removed_xorbs
    assert not {resent.hash, offered.hash, shared.hash} & set(result.removed_xorbs)
    for up in (resent, offered, shared):
        assert _xorb_state(gc_server, services, up.hash)["bytes"] == len(up.xorb)
    assert _gone(gc_server, services, untouched.hash)


def test_a_never_committed_xet_file_goes_after_the_retention_and_its_xorbs_follow(
        gc_server: ServerProcess, services: Services) -> None:
    repo_id, token, cas = _repo(gc_server)
    committed_repo, committed_token, committed_cas = _repo(gc_server)
    lone, both = Upload(), Upload()
    for up in (lone, both):
        assert _send_xorb(gc_server, cas, up)
        assert _send_shard(gc_server, cas, up).status_code == 200
    # `both` is also committed, from another repo's upload of the same xorb: that file keeps the xorb.
    assert _send_xorb(gc_server, committed_cas, both) is False
    assert _send_shard(gc_server, committed_cas, both).status_code == 200
    assert _commit(gc_server, committed_repo, committed_token, {"both.bin": both}).status_code == 200
    _age(gc_server, (lone.hash, both.hash), repo_id)
    _age(gc_server, (), committed_repo)
    young = collect(services, retention_seconds=30 * DAY, dry_run=True)
    assert not {lone.hash, both.hash} & set(young.removed_xorbs)
    dry = collect(services, dry_run=True)
    assert dry.dry_run and dry.xet_files >= 1 and lone.hash in dry.removed_xorbs and both.hash not in dry.removed_xorbs
    pk, committed_pk = _pk(gc_server, repo_id), _pk(gc_server, committed_repo)
    with gc_server.db.session() as session:
        assert session.scalar(select(func.count()).select_from(XetFile).where(XetFile.repo_id == pk)) == 2
    assert _xorb_state(gc_server, services, lone.hash)["bytes"] == len(lone.xorb)  # the dry run removed nothing
    result = collect(services)
    assert result.xet_files == dry.xet_files and lone.hash in result.removed_xorbs
    assert both.hash not in result.removed_xorbs
    with gc_server.db.session() as session:
        for model in (XetFile, XetFileXorb):
            assert session.scalar(select(func.count()).select_from(model).where(model.repo_id == pk)) == 0
            assert session.scalar(select(func.count()).select_from(model).where(model.repo_id == committed_pk)) == 1
    assert _gone(gc_server, services, lone.hash)
    assert _xorb_state(gc_server, services, both.hash)["bytes"] == len(both.xorb)


def test_xorb_bytes_no_row_names_go_after_the_grace_period(gc_server: ServerProcess, services: Services) -> None:
    stray = Upload()
    path = gc_server.data_dir / "stray-xorb"
    path.write_bytes(stray.xorb)
    services.store.put_object(xet_service.XORBS, stray.hash, path)
    assert stray.hash not in collect(services).removed_xorbs  # young
    stored = gc_server.data_dir / "xet" / "xorbs" / stray.hash[:2] / stray.hash
    assert stored.is_file()
    two_days_ago = time.time() - 2 * DAY
    os.utime(stored, (two_days_ago, two_days_ago))
    dry = collect(services, dry_run=True)
    assert stray.hash in dry.removed_xorbs and dry.xorb_orphans >= 1 and stored.is_file()
    result = collect(services)
    assert stray.hash in result.removed_xorbs and result.xorb_orphan_bytes >= len(stray.xorb)
    assert not stored.exists() and _gone(gc_server, services, stray.hash)


def test_shards_racing_the_collector_never_lose_a_xorb(gc_server: ServerProcess, services: Services) -> None:
    """Shards registered while the collector runs with no retention and no grace: every file a
    shard registered still has all its xorbs, row and bytes; every refused shard said to upload
    again. The files' content is committed first (over plain LFS), so that only the xorbs race."""
    repo_id, token, cas = _repo(gc_server)
    uploads = [Upload() for _ in range(12)]
    for up in uploads:
        answer = httpx.post(f"{gc_server.url}/api/models/{repo_id}/blobs", params={"size": len(up.content)},
                            content=up.content, headers=_auth(token))
        assert answer.status_code == 200 and answer.json()["oid"] == up.sha256, answer.text
    assert _commit(gc_server, repo_id, token, {f"f{i}.bin": up for i, up in enumerate(uploads)}).status_code == 200
    outcomes: list[tuple[Upload, int, str]] = []
    xorb_answers: list[tuple[int, str]] = []

    def register_all() -> None:
        for up in uploads:
            for _ in range(4):  # as the client would on a refusal: the xorb again, then the shard
                sent = httpx.post(f"{gc_server.url}/v1/xorbs/default/{up.hash}", content=up.xorb, headers=cas,
                                  timeout=60)
                xorb_answers.append((sent.status_code, sent.text))
                if sent.status_code != 200:
                    continue
                answer = _send_shard(gc_server, cas, up)
                outcomes.append((up, answer.status_code, answer.headers.get("X-Error-Message", "")))
                if answer.status_code == 200:
                    break

    registrar = threading.Thread(target=register_all)
    registrar.start()
    runs = 0
    while registrar.is_alive() and runs < 500:
        collect(services, grace_seconds=0, retention_seconds=0)
        runs += 1
    registrar.join(timeout=300)
    assert not registrar.is_alive() and runs > 0
    collect(services, grace_seconds=0, retention_seconds=0)
    pk = _pk(gc_server, repo_id)
    with gc_server.db.session() as session:
        registered = dict(session.execute(select(XetFile.sha256, XetFile.file_hash).where(XetFile.repo_id == pk)).all())
        uses = set(session.scalars(select(XetFileXorb.xorb_hash).where(XetFileXorb.repo_id == pk)))
    for up, status, message in outcomes:
        if status == 200:
            assert up.sha256 in registered and up.hash in uses
        else:
            assert status == 400 and "upload" in message.lower(), (status, message)
    for up in uploads:
        if up.sha256 in registered:
            state = _xorb_state(gc_server, services, up.hash)
            assert state["row"] and state["bytes"] == len(up.xorb), f"a registered file lost xorb {up.hash}"
            with services.store.open_object(xet_service.XORBS, up.hash) as handle:
                assert handle.read() == up.xorb
        else:
            assert _gone(gc_server, services, up.hash)  # never used: collected with everything it had
    assert any(status == 200 for _, status, _ in outcomes)
    for status, text in xorb_answers:  # a xorb collected between its row and its claims: sent again
        assert status == 200 or (status == 409 and "upload it again" in text.lower()), (status, text)


def test_gc_command_reports_xorbs_and_its_dry_run_removes_nothing(gc_server: ServerProcess,
                                                                  services: Services) -> None:
    repo_id, token, cas = _repo(gc_server)
    up = Upload()
    assert _send_xorb(gc_server, cas, up)
    _age(gc_server, (up.hash,))
    _, admin = gc_server.user(admin=True)

    def gc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "releasehub", "gc", *args], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "HF_ENDPOINT": gc_server.url, "HF_TOKEN": admin})

    dry = gc("--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    answer = json.loads(dry.stdout)
    assert answer["dry_run"] is True and answer["retention_seconds"] == 21 * DAY
    assert up.hash in answer["removed_xorbs"] and answer["xorbs"] >= 1 and answer["xorb_bytes"] >= len(up.xorb)
    assert _xorb_state(gc_server, services, up.hash)["bytes"] == len(up.xorb)
    kept = gc("--retention-days", "30", "--json")
    assert kept.returncode == 0, kept.stderr
    assert up.hash not in json.loads(kept.stdout)["removed_xorbs"] and not _gone(gc_server, services, up.hash)
    done = gc()
    assert done.returncode == 0, done.stderr
    assert "Xet xorbs no file uses" in done.stdout and "Xet retention: 21 days" in done.stdout
    assert _gone(gc_server, services, up.hash)
    with gc_server.db.session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "storage.collected")
                                .order_by(AuditEvent.seq.desc()).limit(1)).one()
    assert event.details is not None and event.details["xorbs"] >= 1 and event.details["retention_seconds"] == 21 * DAY
    assert "removed_xorbs" not in event.details and "removed" not in event.details
