"""docs/deploy.md's "nginx sends the bytes": releasehub decides, nginx sends the file named by
X-Accel-Redirect from its internal location, with the Hub's headers re-added; run as written."""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from conftest import ServerProcess, free_port, start_server, stop_server
from huggingface_hub import HfApi, hf_hub_download

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
CONTENT = random.Random(21).randbytes(2 * 1024 * 1024 + 17)


def _block(tag: str) -> str:
    match = re.search(rf"```nginx {tag}\n(.*?)```", DOC.read_text(), re.S)
    assert match, tag
    return match.group(1)


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        if os.environ.get("CI"):
            pytest.fail("nginx is missing; .ci/run installs Debian's nginx")
        pytest.skip("nginx is not installed")
    root = tmp_path_factory.mktemp("accel")
    server = start_server(root / "data", "", extra_env={"RELEASEHUB_ACCEL_REDIRECT_PREFIX": "/_blobs/",
                                                        "RELEASEHUB_GC_INTERVAL_SECONDS": "0"})
    port = free_port()
    upstream = server.url.removeprefix("http://")
    # The doc's balancer with one replica, and the doc's internal location pointing at its blobs.
    balancer = _block("deploy-balancer")
    balancer = re.sub(r"server 127\.0\.0\.1:8001[^;]*;\n\s*server 127\.0\.0\.1:8002[^;]*;",
                      f"server {upstream};", balancer)
    balancer = balancer.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    accel = _block("deploy-accel").replace("/var/lib/releasehub/blobs/", f"{server.data_dir / 'blobs'}/")
    config = balancer.replace("        location / {", accel + "        location / {", 1)
    folder = root / "nginx"
    (folder / "logs").mkdir(parents=True)
    (folder / "nginx.conf").write_text(config)
    # The worker reads the blobs: nginx's default user must reach them.
    for parent in [server.data_dir, *server.data_dir.parents]:
        parent.chmod(parent.stat().st_mode | 0o011)
    process = subprocess.Popen([nginx, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g",
                                f"daemon off; pid {folder / 'nginx.pid'}; error_log {folder / 'logs/error.log'};"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/api/health", timeout=2)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield server, url
    process.terminate()
    process.wait(timeout=20)
    stop_server(server)


def test_nginx_sends_the_file_with_the_hubs_headers(front: tuple[ServerProcess, str], tmp_path: Path) -> None:
    server, url = front
    user, token = server.user()
    api = HfApi(endpoint=server.url, token=token)
    repo_id = f"{user}/accel"
    api.create_repo(repo_id, private=True)
    info = api.upload_file(path_or_fileobj=CONTENT, path_in_repo="model.safetensors", repo_id=repo_id)
    sha = hashlib.sha256(CONTENT).hexdigest()
    auth = {"Authorization": f"Bearer {token}"}
    direct = httpx.get(f"{server.url}/{repo_id}/resolve/main/model.safetensors", headers=auth)
    assert direct.content == b"" and direct.headers["x-accel-redirect"] == f"/_blobs/{sha[:2]}/{sha[2:4]}/{sha}"
    whole = httpx.get(f"{url}/{repo_id}/resolve/main/model.safetensors", headers=auth)
    assert whole.status_code == 200 and whole.content == CONTENT
    assert "x-accel-redirect" not in whole.headers
    assert whole.headers["x-repo-commit"] == info.oid
    assert whole.headers["etag"] == f'"{sha}"' == whole.headers["x-linked-etag"]
    assert whole.headers["x-linked-size"] == str(len(CONTENT))
    assert "model.safetensors" in whole.headers["content-disposition"]
    # Each once: nginx keeps some of the upstream's headers itself, and adds its own Accept-Ranges.
    for name in ("content-disposition", "cache-control", "accept-ranges", "etag", "x-repo-commit",
                 "x-linked-size", "x-request-id"):
        assert len(whole.headers.get_list(name)) == 1, (name, whole.headers.get_list(name))
    part = httpx.get(f"{url}/{repo_id}/resolve/main/model.safetensors", headers={**auth, "Range": "bytes=5-14"})
    assert part.status_code == 206 and part.content == CONTENT[5:15]
    # The unchanged client through the front.
    path = hf_hub_download(repo_id, "model.safetensors", endpoint=url, token=token, cache_dir=str(tmp_path / "c"))
    assert Path(path).read_bytes() == CONTENT
    # Denied requests are releasehub's answers; the internal location is not reachable from outside.
    _, stranger = server.user()
    denied = httpx.get(f"{url}/{repo_id}/resolve/main/model.safetensors", headers={"Authorization": f"Bearer {stranger}"})
    assert denied.status_code == 404 and denied.headers["x-error-code"] == "RepoNotFound" and denied.content != CONTENT
    assert httpx.get(f"{url}/_blobs/{sha[:2]}/{sha[2:4]}/{sha}").status_code == 404
