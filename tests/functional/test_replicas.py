"""docs/deploy.md's scale-out recipe, run as written: PostgreSQL, a real S3 store (SeaweedFS),
Redis, two `releasehub serve` replicas and nginx with the balancer block of the doc.

The settings are the doc's `deploy-env` block (every variable it names is set, with loopback
values of this run) and nginx runs the doc's `deploy-balancer` block with this run's ports. The
replicas run with RELEASEHUB_STORAGE_PROXY=1, so that downloads pass through them and a replica's
death can cut one (with the default redirect the store sends the bytes; see test_object_store).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from conftest import PG_ADMIN_URL, ServerProcess, free_port, start_server, stop_server
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
REDIS_URL = "redis://127.0.0.1:6379/13"


def doc_block(tag: str) -> str:
    match = re.search(rf"```[a-z]+ {re.escape(tag)}\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"docs/deploy.md has no block tagged {tag}"
    return match.group(1)


def doc_settings() -> dict[str, str]:
    return dict(re.findall(r"^export (\w+)=(\S+)", doc_block("deploy-env"), re.M))


@dataclass
class Cluster:
    a: ServerProcess
    b: ServerProcess
    balancer: str
    nginx: subprocess.Popen[bytes]
    env: dict[str, str]
    admin: str


def _nginx(folder: Path, ports: dict[int, int]) -> subprocess.Popen[bytes]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        if os.environ.get("CI"):
            pytest.fail("nginx is missing; .ci/run installs Debian's nginx")
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    config = doc_block("deploy-balancer")
    for old, new in ports.items():
        config = config.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(config)
    process = subprocess.Popen(
        [nginx, "-p", str(folder), "-c", str(conf), "-g",
         f"daemon off; pid {folder / 'nginx.pid'}; error_log {folder / 'logs' / 'error.log'};"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    return process


@pytest.fixture(scope="module")
def cluster(object_store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    import psycopg
    import redis

    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        redis.Redis.from_url(REDIS_URL).ping()
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            pytest.fail(f"the replica test needs PostgreSQL and Redis: {exc}")
        pytest.skip(f"PostgreSQL or Redis missing: {exc}")
    name = f"releasehub_replicas_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    root = tmp_path_factory.mktemp("replicas")
    store_env = object_store.env()
    balancer_port, port_a, port_b = free_port(), free_port(), free_port()
    values = {
        "RELEASEHUB_DATABASE_URL": database_url,
        "RELEASEHUB_STORAGE_URL": store_env["RELEASEHUB_STORAGE_URL"],
        "RELEASEHUB_S3_ENDPOINT_URL": store_env["RELEASEHUB_S3_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": store_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": store_env["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": store_env["AWS_REGION"],
        "RELEASEHUB_REDIS_URL": REDIS_URL,
        "RELEASEHUB_PUBLIC_URL": f"http://127.0.0.1:{balancer_port}",
        "RELEASEHUB_AUDIT_KEY_FILE": str(root / "audit-signing.key"),
    }
    # Every setting the doc names is one this run sets: a setting missing from the doc fails here.
    assert set(doc_settings()) == set(values), sorted(set(doc_settings()) ^ set(values))
    env = {**values, "RELEASEHUB_STORAGE_PROXY": "1", "RELEASEHUB_GC_INTERVAL_SECONDS": "0", "ENGINE_KEY": "sk-e"}
    upgrade = subprocess.run([sys.executable, "-m", "releasehub", "db", "upgrade"], env={**os.environ, **env},
                             capture_output=True, text=True, timeout=120)
    assert upgrade.returncode == 0, upgrade.stderr
    a = start_server(root / "a", database_url, extra_env=env, port=port_a)
    b = start_server(root / "b", database_url, extra_env=env, port=port_b)
    nginx = _nginx(root / "nginx", {8001: port_a, 8002: port_b, 8080: balancer_port})
    balancer = f"http://127.0.0.1:{balancer_port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{balancer}/api/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        nginx.kill()
        raise RuntimeError((root / "nginx" / "logs" / "error.log").read_text())
    _, admin = a.user(admin=True)
    yield Cluster(a, b, balancer, nginx, env, admin)
    nginx.terminate()
    nginx.wait(timeout=20)
    for replica in (a, b):
        stop_server(replica)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _cli(url: str, token: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "releasehub", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", "HF_ENDPOINT": url, "HF_TOKEN": token})
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_upload_through_a_downloads_through_b_and_the_balancer(cluster: Cluster, tmp_path: Path) -> None:
    user, token = cluster.a.user()
    content = random.Random(11).randbytes(3 * 1024 * 1024)
    api_a = HfApi(endpoint=cluster.a.url, token=token)
    repo_id = f"{user}/replicated"
    api_a.create_repo(repo_id, private=True)
    info = api_a.upload_file(path_or_fileobj=content, path_in_repo="model.safetensors", repo_id=repo_id)
    for endpoint in (cluster.b.url, cluster.balancer):
        path = hf_hub_download(repo_id, "model.safetensors", endpoint=endpoint, token=token,
                               cache_dir=str(tmp_path / f"cache-{endpoint.rsplit(':', 1)[1]}"))
        assert Path(path).read_bytes() == content
        head = httpx.head(f"{endpoint}/{repo_id}/resolve/main/model.safetensors", headers=_auth(token))
        assert head.headers["x-repo-commit"] == info.oid
    # A stranger is refused on every replica, as for a missing repo.
    _, stranger = cluster.b.user()
    for endpoint in (cluster.a.url, cluster.b.url, cluster.balancer):
        answer = httpx.get(f"{endpoint}/{repo_id}/resolve/main/model.safetensors", headers=_auth(stranger))
        assert answer.status_code == 404 and answer.headers["x-error-code"] == "RepoNotFound"


def test_a_key_revoked_on_a_is_refused_on_b_at_the_next_request(cluster: Cluster) -> None:
    from engine.openai_engine import start_engine, stop_engine

    engine, engine_url = start_engine(model="engine-model", api_key="sk-e")
    try:
        user, token = cluster.a.user()
        repo_id = f"{user}/hosted-{uuid.uuid4().hex[:6]}"
        HfApi(endpoint=cluster.a.url, token=token).create_repo(repo_id)
        _cli(cluster.a.url, cluster.admin, "hosted", "attach", repo_id, "--backend", f"{engine_url}/v1",
             "--model", "engine-model", "--api-key-env", "ENGINE_KEY")
        key = _cli(cluster.a.url, token, "keys", "create", user, "--repo", repo_id).strip().splitlines()[-1]
        body = {"model": repo_id, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}

        def call(server: ServerProcess) -> httpx.Response:
            return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=_auth(key), timeout=30)

        assert call(cluster.a).status_code == 200 and call(cluster.b).status_code == 200
        # The kill switch set through A holds on B from the next request, and lifting it too.
        _cli(cluster.a.url, token, "hosted", "disable", repo_id, "--reason", "incident 7")
        refused = call(cluster.b)
        assert refused.status_code == 503 and "incident 7" in refused.text
        _cli(cluster.a.url, token, "hosted", "enable", repo_id)
        assert call(cluster.b).status_code == 200
        # A key revoked through A is refused by B at once.
        _cli(cluster.a.url, token, "keys", "revoke", key.split(".", 1)[0], "--reason", "leaked")
        gone = call(cluster.b)
        assert gone.status_code == 401 and "leaked" in gone.text
    finally:
        stop_engine(engine)


def _tree_written(pid: int) -> int:
    """Bytes the process and its children wrote (sockets included: /proc/PID/io wchar)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/io").read_text().splitlines():
                if line.startswith("wchar:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total


def test_a_replica_killed_mid_download_leaves_the_client_to_finish(cluster: Cluster, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants
    from huggingface_hub.utils import tqdm as hf_tqdm

    user, token = cluster.a.user()
    content = random.Random(12).randbytes(48 * 1024 * 1024)
    repo_id = f"{user}/kill-download"
    api = HfApi(endpoint=cluster.a.url, token=token)
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=content, path_in_repo="big.safetensors", repo_id=repo_id)

    # A slow reader (so that the replica is still sending when it dies), which kills the replica
    # serving it once 8 MiB have arrived: the one whose processes wrote the most since the start.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 256 * 1024)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # plain HTTP, through the replicas
    before = {r.url: _tree_written(r.process.pid) for r in (cluster.a, cluster.b)}
    killed: list[ServerProcess] = []
    victim_sent: list[int] = []
    received = [0]
    real_update = hf_tqdm.update

    def update(self: Any, n: float | None = 1) -> bool | None:
        received[0] += int(n or 0)
        time.sleep(0.004)
        if not killed and received[0] >= 8 * 1024 * 1024:
            sent = {r.url: _tree_written(r.process.pid) - before[r.url] for r in (cluster.a, cluster.b)}
            victim = max((cluster.a, cluster.b), key=lambda r: sent[r.url])
            victim_sent.append(sent[victim.url])
            os.killpg(victim.process.pid, signal.SIGKILL)
            victim.process.wait(timeout=20)
            killed.append(victim)
        return real_update(self, n)

    monkeypatch.setattr(hf_tqdm, "update", update)
    try:
        path = hf_hub_download(repo_id, "big.safetensors", endpoint=cluster.balancer, token=token,
                               cache_dir=str(tmp_path / "cache"))
        assert killed, "the download ended before a replica could be killed"
        # It died having sent part of the file (it had sent at least what arrived): the rest came
        # from the other replica, through the balancer, on the client's resumed request.
        assert 8 * 1024 * 1024 <= victim_sent[0] < len(content), victim_sent
        assert hashlib.sha256(Path(path).read_bytes()).digest() == hashlib.sha256(content).digest()
    finally:
        for victim in killed:  # back for the next tests, on the same port
            restarted = start_server(victim.data_dir, victim.database_url.replace("+psycopg", ""),
                                     extra_env=cluster.env, port=int(victim.url.rsplit(":", 1)[1]))
            victim.process = restarted.process


def test_a_replica_killed_mid_commit_leaves_the_old_or_the_new_revision(cluster: Cluster) -> None:
    user, token = cluster.a.user()
    api_a = HfApi(endpoint=cluster.a.url, token=token)
    repo_id = f"{user}/kill-commit"
    api_a.create_repo(repo_id)
    old = api_a.upload_file(path_or_fileobj=b"v1\n", path_in_repo="version.txt", repo_id=repo_id).oid
    rng = random.Random(13)
    ops = [CommitOperationAdd(f"files/f{i:04d}.txt", rng.randbytes(2000).hex().encode()) for i in range(1500)]
    ops.append(CommitOperationAdd("version.txt", b"v2\n"))
    errors: list[BaseException] = []
    results: list[str] = []

    def commit() -> None:
        try:
            results.append(api_a.create_commit(repo_id, ops, commit_message="big").oid)
        except BaseException as exc:  # noqa: BLE001 - the kill
            errors.append(exc)

    worker = threading.Thread(target=commit)
    worker.start()
    time.sleep(rng.uniform(0.3, 1.5))
    os.killpg(cluster.a.process.pid, signal.SIGKILL)
    cluster.a.process.wait(timeout=20)
    worker.join(timeout=120)
    try:
        api_b = HfApi(endpoint=cluster.b.url, token=token)
        head = api_b.list_repo_commits(repo_id)[0].commit_id
        files = set(api_b.list_repo_files(repo_id))
        version = httpx.get(f"{cluster.b.url}/{repo_id}/resolve/main/version.txt", headers=_auth(token)).content
        if head == old:
            assert version == b"v1\n" and not any(f.startswith("files/") for f in files)
        else:
            assert version == b"v2\n" and {f"files/f{i:04d}.txt" for i in range(1500)} <= files
            assert results in ([], [head])
    finally:
        restarted = start_server(cluster.a.data_dir, cluster.a.database_url.replace("+psycopg", ""),
                                 extra_env=cluster.env, port=int(cluster.a.url.rsplit(":", 1)[1]))
        cluster.a.process = restarted.process


def test_a_token_revoked_or_a_repo_hidden_on_a_holds_on_b_at_the_next_request(cluster: Cluster) -> None:
    """B caches what the download route reads while the change signal stays the same: a change
    committed through A reaches B's next request."""
    user, token = cluster.a.user()
    api = HfApi(endpoint=cluster.a.url, token=token)
    repo_id = f"{user}/cached-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"config\n", path_in_repo="config.json", repo_id=repo_id)
    url = f"{cluster.b.url}/{repo_id}/resolve/main/config.json"
    for _ in range(3):  # warm B's cache
        assert httpx.head(url, headers=_auth(token)).status_code == 200
        assert httpx.head(url).status_code == 200
    # Private, through A: anonymous on B is refused at once; the owner still reads.
    assert httpx.put(f"{cluster.a.url}/api/models/{repo_id}/settings", json={"private": True},
                     headers=_auth(token)).status_code == 200
    assert httpx.head(url).status_code == 401
    assert httpx.head(url, headers=_auth(token)).status_code == 200
    # The token revoked through A: refused on B at once.
    tokens = httpx.get(f"{cluster.a.url}/api/tokens", headers=_auth(token)).json()
    assert len(tokens) == 1  # the user's one token
    token_id = tokens[0]["id"]
    assert httpx.delete(f"{cluster.a.url}/api/tokens/{token_id}", headers=_auth(token)).status_code == 200
    refused = httpx.head(url, headers=_auth(token))
    assert refused.status_code == 401
