"""Shared fixtures.

`server` runs the real `releasehub serve` process, once on SQLite and once on the machine's
PostgreSQL (a fresh database per test session), so every functional test runs on both.
Users and tokens are created in-process against the same database, the way the CLI does.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

# The client must not use Xet (the server speaks LFS) nor read a developer's saved token.
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.pop("HF_TOKEN", None)
os.environ.pop("HF_ENDPOINT", None)

import httpx  # noqa: E402
import pytest  # noqa: E402

from releasehub.accounts import service as accounts  # noqa: E402
from releasehub.db import Database  # noqa: E402

if TYPE_CHECKING:
    from tests.objectstore import ObjectStoreServer

PG_ADMIN_URL = os.environ.get("RELEASEHUB_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session", autouse=True)
def _isolated_hf_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("hf-home")
    os.environ["HF_HOME"] = str(home)
    # Nor a developer's `releasehub login` or default data dir: commands that find neither flag nor
    # environment fall back to those, so a test expecting "no token" would pass on a stored login.
    os.environ["RELEASEHUB_CONFIG"] = str(home / "releasehub-login.json")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))


# The longest files first: `make test` hands whole files to its two workers (`--dist loadfile`) in
# collection order, so a long file collected last would run alone at the end.
SLOW_FIRST = (
    "tests/functional/test_readme_examples.py", "tests/functional/test_schemathesis.py",
    "tests/functional/test_replicas.py", "tests/functional/test_object_store.py", "tests/functional/test_crash.py",
    "tests/functional/test_gateway.py", "tests/browser/", "tests/functional/test_admin_gateway.py",
    "tests/functional/test_xet.py", "tests/functional/test_download.py", "tests/functional/test_upload.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return next((i for i, prefix in enumerate(SLOW_FIRST) if path.startswith(prefix)), len(SLOW_FIRST))

    items.sort(key=rank)  # stable: the order inside each file, and of the other files, is kept


@pytest.fixture(scope="session", autouse=True)
def _one_tls_context() -> Iterator[None]:
    """Every httpx client made by the tests shares one default TLS context.

    httpx.get/post/head make a client per call, and each client loads certifi's CA bundle into a
    TLS context of its own, about 25 ms of CPU, to speak plain HTTP to 127.0.0.1; the suite makes
    thousands of such calls. Requests are made as before, each by a new client of its own (no
    cookies or connections carried over); a client asking for anything but the default context
    still gets its own.
    """
    from httpx._transports import default as transports

    make = transports.create_ssl_context
    shared = make()

    def create_ssl_context(verify: object = True, cert: object = None, trust_env: bool = True) -> object:
        if verify is True and cert is None and trust_env:
            return shared
        return make(verify=verify, cert=cert, trust_env=trust_env)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transports, "create_ssl_context", create_ssl_context)
        yield


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped at the end of the session."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}; CI needs it.")
        pytest.skip("PostgreSQL is not reachable")
    import psycopg

    name = f"releasehub_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class ServerProcess:
    url: str
    data_dir: Path
    database_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    db: Database
    env: dict[str, str] | None = None

    def blob_store(self):  # type: ignore[no-untyped-def]
        """The server's blob store, opened as the server opens it (local files or S3)."""
        from releasehub.settings import Settings
        from releasehub.storage import open_store

        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
            if self.env and name in self.env:
                os.environ[name] = self.env[name]
        return open_store(Settings.from_env({**(self.env or {}), "RELEASEHUB_DATA_DIR": str(self.data_dir)}))

    def user(self, name: str | None = None, *, scope: str = "write", admin: bool = False,
             email: str | None = None, email_verified: bool = False) -> tuple[str, str]:
        """Create a user and a token; returns (name, token)."""
        name = name or f"user-{uuid.uuid4().hex[:8]}"
        with self.db.session() as session:
            user = accounts.create_user(session, name, admin=admin, email=email)
            user.email_verified = email_verified
            _, secret = accounts.create_token(session, name, scope=scope)
        return name, secret

    def token(self, user: str, *, scope: str = "write") -> str:
        with self.db.session() as session:
            _, secret = accounts.create_token(session, user, scope=scope)
        return secret

    def org(self, name: str, owner: str) -> str:
        with self.db.session() as session:
            accounts.create_org(session, name, owner=owner)
        return name

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(data_dir: Path, database_url: str, extra_env: dict[str, str] | None = None,
                 port: int | None = None) -> ServerProcess:
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    # The tests' webhook receivers listen on loopback, which webhooks may reach only when allowed.
    env = {**os.environ, "RELEASEHUB_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", **(extra_env or {})}
    cmd = [sys.executable, "-m", "releasehub", "serve", "--port", str(port), "--data-dir", str(data_dir),
           "--public-url", url]
    if database_url:
        cmd += ["--database-url", database_url]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
    db_url = database_url or f"sqlite:///{(data_dir / 'releasehub.db').resolve()}"
    return ServerProcess(url, data_dir, db_url, process, log_path, Database(db_url), dict(extra_env or {}))


def stop_server(server: ServerProcess, sig: int | None = None) -> None:
    import signal

    try:
        os.killpg(server.process.pid, sig or signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=20)
    server.db.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def _server_pool() -> Iterator[dict[str, ServerProcess]]:
    """One server per backend for the whole session, stopped at its end. (`server` is parametrized
    by backend: pytest tears such a fixture down whenever the next test wants the other param,
    which under `--dist loadfile` is at every file; the pool keeps the processes across that.)"""
    pool: dict[str, ServerProcess] = {}
    yield pool
    for proc in pool.values():
        stop_server(proc)


def pooled_server(backend: str, pool: dict[str, ServerProcess], tmp_path_factory: pytest.TempPathFactory,
                  request: pytest.FixtureRequest) -> ServerProcess:
    """The session's server for a backend: "sqlite", "postgres", or "s3" (SQLite with the blobs in a
    real S3-compatible store, SeaweedFS), started on first use."""
    if backend not in pool:
        database_url = request.getfixturevalue("postgres_url") if backend == "postgres" else ""
        extra = request.getfixturevalue("object_store").env() if backend == "s3" else None
        pool[backend] = start_server(tmp_path_factory.mktemp(f"server-{backend}"), database_url, extra_env=extra)
    return pool[backend]


@pytest.fixture(scope="session")
def server(backend: str, _server_pool: dict[str, ServerProcess], tmp_path_factory: pytest.TempPathFactory,
           request: pytest.FixtureRequest) -> ServerProcess:
    """The server of this test's backend. Modules that also run on S3 override this fixture with
    params of their own (see test_download.py): overriding `backend` instead would leave this
    session-scoped fixture cached with another module's server."""
    return pooled_server(backend, _server_pool, tmp_path_factory, request)


@pytest.fixture
def owner(server: ServerProcess) -> tuple[str, str]:
    """A fresh user with a write token."""
    return server.user()


@pytest.fixture
def api(server: ServerProcess, owner: tuple[str, str]):  # type: ignore[no-untyped-def]
    from huggingface_hub import HfApi

    return HfApi(endpoint=server.url, token=owner[1])


@pytest.fixture
def repo_id(api, owner: tuple[str, str]) -> str:  # type: ignore[no-untyped-def]
    """A fresh public repo of `owner`."""
    rid = f"{owner[0]}/model-{uuid.uuid4().hex[:6]}"
    api.create_repo(rid)
    return rid


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator["ObjectStoreServer"]:
    """A SeaweedFS S3 server of this test process (tests/objectstore.py); each test takes a bucket."""
    from tests.objectstore import start_object_store

    server = start_object_store(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()
