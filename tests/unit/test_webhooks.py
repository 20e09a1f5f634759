"""Webhooks: the outbox, the dispatcher against a real HTTP listener, signatures, retries, leases.

Each database test runs on a temporary SQLite file and, when the machine's PostgreSQL answers, on
a fresh PostgreSQL database (where the claim by conditional UPDATE matters most).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import delete, func, select

import releasehub.accounts.models  # noqa: F401  (for its tables, which the schema needs)
from releasehub.db import Base, Database, utcnow
from releasehub.errors import BadRequest, NotFound
from releasehub.repos.models import Repo
from releasehub.webhooks import service
from releasehub.webhooks.dispatcher import Dispatcher, sign
from releasehub.webhooks.models import Webhook, WebhookDelivery
from releasehub.webhooks.targets import TargetRefused, check_target, parse_networks

LOOPBACK = parse_networks("127.0.0.0/8")
PUBLIC = "93.184.215.14"  # a global address (example.org's, once)


@pytest.fixture(autouse=True)
def example_org_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine has no DNS for the internet: example.org (used as a public receiver's name in
    these tests, never contacted) resolves to a public address here; other names resolve as usual."""
    import releasehub.webhooks.targets as targets

    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "example.org":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(targets.socket, "getaddrinfo", getaddrinfo)

PG_ADMIN_URL = os.environ.get("RELEASEHUB_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


# ------------------------------------------------------------------ the receiver


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers `status`."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    location: str = "/elsewhere"
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def url(self, path: str = "/hook") -> str:
        return self.base + path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self._answer()

        def do_GET(self) -> None:  # a followed redirect would arrive here
            self._answer()

        def _answer(self) -> None:
            rec = state["receiver"]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with rec.lock:
                rec.requests.append(Received(self.command, self.path, dict(self.headers.items()), body))
                status = rec.status
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", rec.base + rec.location)
            payload = b"receiver says no" if status >= 300 else b"ok"
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["receiver"] = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state["receiver"]
    server.shutdown()
    server.server_close()
    thread.join(5)


# ------------------------------------------------------------------ the database


def _pg_database() -> Iterator[str]:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            pass
    except Exception:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}; CI needs it.")
        pytest.skip("PostgreSQL is not reachable")
    name = f"releasehub_webhooks_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('webhooks')}/hub.db"
        yield url
        return
    yield from _pg_database()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    Base.metadata.create_all(database.engine)
    # Deliveries left by an earlier test would be due for this test's dispatchers too.
    with database.session() as session:
        session.execute(delete(WebhookDelivery))
        session.execute(delete(Webhook))
    yield database
    database.dispose()


@pytest.fixture
def repo(db: Database) -> Repo:
    with db.session() as session:
        row = Repo(namespace="lab", name=f"model-{uuid.uuid4().hex[:8]}", created_at=utcnow(),
                   updated_at=utcnow())
        session.add(row)
    return row


@pytest.fixture
def make_dispatcher(db: Database) -> Iterator[Callable[..., Dispatcher]]:
    made: list[Dispatcher] = []

    def make(database: Database | None = None, **kwargs: Any) -> Dispatcher:
        kwargs.setdefault("timeout", 3)
        kwargs.setdefault("backoff_base", 0.05)
        kwargs.setdefault("allowed_networks", LOOPBACK)  # the receivers of these tests listen on 127.0.0.1
        dispatcher = Dispatcher(database or db, **kwargs)
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        dispatcher.stop()


def add_webhook(db: Database, repo: Repo, url: str, events: list[str] | None = None,
                secret: str | None = None) -> Webhook:
    with db.session() as session:
        return service.register(session, repo, url, events, secret, created_by="alice", allowed_networks=LOOPBACK)


def enqueue(db: Database, repo: Repo, event: str = "access.requested",
            data: dict[str, Any] | None = None) -> int:
    with db.session() as session:
        return service.enqueue(session, repo.id, repo.repo_id, event, data or {"actor": "bob"})


def deliveries(db: Database) -> list[WebhookDelivery]:
    with db.session() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ delivering


def test_delivers_the_exact_payload_signed(db: Database, repo: Repo, receiver: Receiver,
                                           make_dispatcher: Callable[..., Dispatcher]) -> None:
    secret = "s3cret-" + secrets.token_hex(8)
    add_webhook(db, repo, receiver.url(), secret=secret)
    assert enqueue(db, repo, "access.requested", {"actor": "bob", "tier": "weights", "at": utcnow()}) == 1

    assert make_dispatcher().deliver_due() == 1

    [req] = receiver.requests
    [row] = deliveries(db)
    assert req.method == "POST" and req.path == "/hook"
    headers = {k.lower(): v for k, v in req.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "releasehub-webhooks"
    assert headers["x-releasehub-event"] == "access.requested"
    assert headers["x-releasehub-delivery"] == row.id
    payload = json.loads(req.body)
    assert payload == row.payload
    assert payload["event"] == "access.requested" and payload["repo"] == repo.repo_id
    assert payload["id"] == row.id and payload["occurred_at"].endswith("Z")
    assert payload["data"]["actor"] == "bob" and payload["data"]["tier"] == "weights"
    assert isinstance(payload["data"]["at"], str)  # stored as plain JSON

    timestamp = headers["x-releasehub-timestamp"]
    assert abs(time.time() - int(timestamp)) < 300
    signature = headers["x-releasehub-signature"]
    assert signature == sign(secret, timestamp, req.body)
    independent = hmac.new(secret.encode(), timestamp.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, "sha256=" + independent)
    assert not hmac.compare_digest(signature, sign(secret, str(int(timestamp) + 1), req.body))

    assert row.status == "delivered" and row.attempts == 1 and row.response_status == 200
    assert row.delivered_at is not None and row.lease_until is None and row.last_error is None
    assert make_dispatcher().deliver_due(now=utcnow() + timedelta(days=1)) == 0
    assert len(receiver.requests) == 1


def test_only_subscribed_active_webhooks_receive(db: Database, repo: Repo, receiver: Receiver,
                                                 make_dispatcher: Callable[..., Dispatcher]) -> None:
    add_webhook(db, repo, receiver.url("/revisions"), events=["repo.revision"])
    add_webhook(db, repo, receiver.url("/all"))
    inactive = add_webhook(db, repo, receiver.url("/inactive"))
    with db.session() as session:
        session.get(Webhook, inactive.id).active = False  # type: ignore[union-attr]

    assert enqueue(db, repo, "access.requested") == 1
    assert enqueue(db, repo, "repo.revision", {"actor": "bob", "revision": "a" * 40}) == 2
    assert make_dispatcher().deliver_due() == 3

    got = sorted((r.path, json.loads(r.body)["event"]) for r in receiver.requests)
    assert got == [("/all", "access.requested"), ("/all", "repo.revision"), ("/revisions", "repo.revision")]


def test_a_rolled_back_transaction_queues_nothing(db: Database, repo: Repo, receiver: Receiver,
                                                  make_dispatcher: Callable[..., Dispatcher]) -> None:
    add_webhook(db, repo, receiver.url())
    with pytest.raises(RuntimeError), db.session() as session:
        assert service.enqueue(session, repo.id, repo.repo_id, "access.revoked", {"actor": "alice"}) == 1
        raise RuntimeError("the change failed after the event was queued")
    assert deliveries(db) == []
    assert make_dispatcher().deliver_due() == 0
    assert receiver.requests == []


def test_a_server_error_is_retried_later_and_delivered_once(
        db: Database, repo: Repo, receiver: Receiver, make_dispatcher: Callable[..., Dispatcher]) -> None:
    add_webhook(db, repo, receiver.url())
    enqueue(db, repo, "access.accepted")
    dispatcher = make_dispatcher(backoff_base=1.0)
    receiver.status = 500

    before = utcnow()
    assert dispatcher.deliver_due() == 1
    [row] = deliveries(db)
    assert row.status == "pending" and row.attempts == 1 and row.response_status == 500
    assert row.last_error is not None
    assert "HTTP 500" in row.last_error and "receiver says no" not in row.last_error  # the body is not kept
    assert row.next_attempt_at > before + timedelta(seconds=0.9)
    assert row.lease_until is None
    assert dispatcher.deliver_due() == 0  # not due yet

    receiver.status = 200
    assert dispatcher.deliver_due(now=row.next_attempt_at + timedelta(milliseconds=1)) == 1
    [row] = deliveries(db)
    assert row.status == "delivered" and row.attempts == 2 and row.response_status == 200
    assert dispatcher.deliver_due(now=utcnow() + timedelta(days=1)) == 0

    assert [r.headers["X-Releasehub-Delivery"] for r in receiver.requests] == [row.id, row.id]
    assert len(receiver.requests) == 2  # one refused, one delivered


def test_backoff_doubles_up_to_the_cap(db: Database, make_dispatcher: Callable[..., Dispatcher]) -> None:
    dispatcher = make_dispatcher(backoff_base=1.0, backoff_cap=600.0)
    assert [dispatcher._backoff(n).total_seconds() for n in (1, 2, 3, 4, 10, 11, 30)] == \
        [1, 2, 4, 8, 512, 600, 600]


def test_after_max_attempts_the_delivery_fails(db: Database, repo: Repo, receiver: Receiver,
                                               make_dispatcher: Callable[..., Dispatcher]) -> None:
    add_webhook(db, repo, receiver.url())
    enqueue(db, repo, "access.rejected")
    receiver.status = 503
    dispatcher = make_dispatcher(max_attempts=3)
    start = utcnow()
    for minute in range(1, 4):
        assert dispatcher.deliver_due(now=start + timedelta(minutes=minute)) == 1
    [row] = deliveries(db)
    assert row.status == "failed" and row.attempts == 3 and row.response_status == 503
    assert row.last_error is not None and "HTTP 503" in row.last_error
    assert dispatcher.deliver_due(now=start + timedelta(days=1)) == 0
    assert len(receiver.requests) == 3


def test_a_redirect_is_not_followed(db: Database, repo: Repo, receiver: Receiver,
                                    make_dispatcher: Callable[..., Dispatcher]) -> None:
    add_webhook(db, repo, receiver.url())
    enqueue(db, repo)
    receiver.status = 302
    assert make_dispatcher().deliver_due() == 1
    assert [(r.method, r.path) for r in receiver.requests] == [("POST", "/hook")]
    [row] = deliveries(db)
    assert row.status == "pending" and row.attempts == 1 and row.response_status == 302
    assert row.last_error is not None and "not followed" in row.last_error and "/elsewhere" in row.last_error


def test_an_unreachable_receiver_records_the_error(db: Database, repo: Repo,
                                                   make_dispatcher: Callable[..., Dispatcher]) -> None:
    add_webhook(db, repo, f"http://127.0.0.1:{closed_port()}/hook")
    enqueue(db, repo)
    assert make_dispatcher().deliver_due() == 1
    [row] = deliveries(db)
    assert row.status == "pending" and row.attempts == 1 and row.response_status is None
    assert row.last_error is not None and "ConnectError" in row.last_error


def test_concurrent_dispatchers_send_each_delivery_once(
        db: Database, repo: Repo, receiver: Receiver, make_dispatcher: Callable[..., Dispatcher]) -> None:
    add_webhook(db, repo, receiver.url("/a"))
    add_webhook(db, repo, receiver.url("/b"))
    with db.session() as session:
        queued = sum(service.enqueue(session, repo.id, repo.repo_id, "repo.revision", {"n": n})
                     for n in range(30))
    assert queued == 60

    # Two dispatchers with their own engines, as on two replicas.
    other = Database(db.url)
    dispatchers = [make_dispatcher(concurrency=4), make_dispatcher(other, concurrency=4)]
    barrier = threading.Barrier(len(dispatchers))
    handled = [0] * len(dispatchers)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            while count := dispatchers[index].deliver_due():
                handled[index] += count
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(dispatchers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    other.dispose()
    assert not errors
    ids = [r.headers["X-Releasehub-Delivery"] for r in receiver.requests]
    assert len(ids) == 60 and len(set(ids)) == 60
    assert sum(handled) == 60
    rows = deliveries(db)
    assert {row.status for row in rows} == {"delivered"} and {row.attempts for row in rows} == {1}


def test_the_thread_sends_after_a_wake(db: Database, repo: Repo, receiver: Receiver,
                                       make_dispatcher: Callable[..., Dispatcher]) -> None:
    add_webhook(db, repo, receiver.url())
    dispatcher = make_dispatcher(poll_interval=30)  # only a wake can make it look again in time
    dispatcher.start()
    time.sleep(0.1)  # let its first round find nothing
    enqueue(db, repo, "policy.changed")
    dispatcher.wake()
    deadline = time.monotonic() + 5
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    dispatcher.stop()
    assert len(receiver.requests) == 1
    assert deliveries(db)[0].status == "delivered"


def test_a_deleted_webhook_takes_its_deliveries(db: Database, repo: Repo, receiver: Receiver,
                                                make_dispatcher: Callable[..., Dispatcher]) -> None:
    hook = add_webhook(db, repo, receiver.url())
    enqueue(db, repo)
    with db.session() as session:
        service.remove(session, repo, hook.id)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    assert make_dispatcher().deliver_due() == 0


# ------------------------------------------------------------------ registering


def test_register_defaults(db: Database, repo: Repo) -> None:
    hook = add_webhook(db, repo, "  https://example.org/hooks/releasehub  ")
    assert hook.url == "https://example.org/hooks/releasehub"
    assert hook.events == list(service.EVENTS) and hook.active
    assert len(hook.secret) == 64 and int(hook.secret, 16) >= 0
    other = add_webhook(db, repo, f"http://{PUBLIC}:8080/x", events=["repo.revision", "repo.revision"])
    assert other.events == ["repo.revision"] and other.secret != hook.secret
    with db.session() as session:
        assert [w.id for w in service.list_webhooks(session, repo)] == [hook.id, other.id]


@pytest.mark.parametrize("url", [
    "", "example.org/hook", "ftp://example.org/hook", "file:///etc/passwd", "javascript:alert(1)",
    "http://", "https:///path", "http://example.org:99999/", "http://exa mple.org/", "http://example.org/a\nb",
])
def test_register_rejects_bad_urls(db: Database, repo: Repo, url: str) -> None:
    with pytest.raises(BadRequest) as raised:
        add_webhook(db, repo, url)
    message = raised.value.message
    assert "URL" in message and ("http" in message or "percent-encode" in message)
    assert deliveries(db) == []


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/x", "http://localhost/x", "http://10.1.2.3/x", "http://192.168.0.10/x",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/x", "http://[::ffff:10.0.0.1]/x",
    "http://[fd00::1]/x", "http://0.0.0.0/x", "http://100.64.0.1/x", "http://224.0.0.1/x",
    "http://no-such-host.invalid/x",
])
def test_register_refuses_targets_inside_the_network(db: Database, repo: Repo, url: str) -> None:
    with pytest.raises(BadRequest) as raised, db.session() as session:
        service.register(session, repo, url, None, None, created_by="alice")  # nothing allowed: the default
    message = raised.value.message
    assert "was refused" in message
    assert "RELEASEHUB_WEBHOOK_ALLOWED_NETWORKS" in message or "does not resolve" in message
    with db.session() as session:
        assert service.list_webhooks(session, repo) == []


def test_allowed_networks_open_exactly_themselves() -> None:
    allowed = parse_networks(" 10.0.0.0/8 , ::1 ")
    check_target("http://10.200.0.5:8080/x", allowed)
    check_target("http://[::1]/x", allowed)
    check_target(f"https://{PUBLIC}/x")  # public: always
    check_target("http://11.0.0.1/x", allowed)  # next to 10/8, and public anyway
    for url in ("http://127.0.0.1/x", "http://192.168.1.1/x"):
        with pytest.raises(TargetRefused, match="private, loopback or reserved"):
            check_target(url, allowed)
    with pytest.raises(ValueError, match="RELEASEHUB_WEBHOOK_ALLOWED_NETWORKS: 'ten' is not a network"):
        parse_networks("10.0.0.0/8,ten")


def test_a_delivery_to_a_target_no_longer_allowed_is_not_sent(
        db: Database, repo: Repo, receiver: Receiver, make_dispatcher: Callable[..., Dispatcher]) -> None:
    """Checked again before every send: the webhook was registered while loopback was allowed."""
    add_webhook(db, repo, receiver.url())
    enqueue(db, repo)
    make_dispatcher(allowed_networks=()).deliver_due()
    assert receiver.requests == []
    [row] = deliveries(db)
    assert row.attempts == 1 and "not sent" in row.last_error and "private, loopback" in row.last_error


def test_register_rejects_unknown_or_no_events(db: Database, repo: Repo) -> None:
    with pytest.raises(BadRequest) as raised:
        add_webhook(db, repo, "https://example.org/hook", events=["access.requested", "repo.deleted"])
    assert "'repo.deleted'" in raised.value.message
    assert "Known events: access.requested" in raised.value.message
    with pytest.raises(BadRequest, match="leave events out"):
        add_webhook(db, repo, "https://example.org/hook", events=[])


def test_register_rejects_weak_secrets(db: Database, repo: Repo) -> None:
    with pytest.raises(BadRequest, match="16 to 128"):
        add_webhook(db, repo, "https://example.org/hook", secret="short")
    assert add_webhook(db, repo, "https://example.org/hook", secret="x" * 16).secret == "x" * 16


def test_webhooks_of_another_repo_are_not_found(db: Database, repo: Repo) -> None:
    hook = add_webhook(db, repo, "https://example.org/hook")
    with db.session() as session:
        other = Repo(namespace="lab", name=f"other-{uuid.uuid4().hex[:8]}", created_at=utcnow(),
                     updated_at=utcnow())
        session.add(other)
    with db.session() as session:
        with pytest.raises(NotFound, match="releasehub webhooks list"):
            service.remove(session, other, hook.id)
        with pytest.raises(NotFound):
            service.list_deliveries(session, other, hook.id)


def test_enqueue_refuses_an_unknown_event(db: Database, repo: Repo) -> None:
    with pytest.raises(ValueError, match="unknown webhook event"):
        enqueue(db, repo, "repo.exploded")


# ------------------------------------------------------------------ the HTTP routes


def test_routes(tmp_path: Path, receiver: Receiver) -> None:
    from fastapi.testclient import TestClient

    from releasehub.accounts import service as accounts
    from releasehub.app import create_app
    from releasehub.settings import Settings

    app = create_app(Settings(data_dir=tmp_path, webhook_allowed_networks="127.0.0.0/8"))
    services = app.state.services
    # The webhook tables come with a migration of their own; create them if it is not there yet.
    Base.metadata.create_all(services.db.engine)
    with services.db.session() as session:
        accounts.create_user(session, "owner")
        accounts.create_user(session, "stranger")
        _, owner_token = accounts.create_token(session, "owner", scope="write")
        _, stranger_token = accounts.create_token(session, "stranger", scope="write")
    owner = {"Authorization": f"Bearer {owner_token}"}
    stranger = {"Authorization": f"Bearer {stranger_token}"}
    api = "/api/models/owner/m/webhooks"

    with TestClient(app) as client:
        assert client.post("/api/repos/create", json={"name": "m"}, headers=owner).status_code == 200

        bad = client.post(api, json={"url": "ftp://x/y"}, headers=owner)
        assert bad.status_code == 400 and "http or https" in bad.headers["X-Error-Message"]
        refused = client.post(api, json={"url": receiver.url()}, headers=stranger)
        assert refused.status_code in (403, 404)
        assert client.get(api).status_code == 401

        added = client.post(api, json={"url": receiver.url(), "events": ["policy.changed"]}, headers=owner)
        assert added.status_code == 200, added.text
        hook = added.json()
        assert hook["events"] == ["policy.changed"] and len(hook["secret"]) == 64

        listed = client.get(api, headers=owner).json()
        assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]

        # A change that emits policy.changed reaches the receiver through the app's dispatcher.
        settings = client.put("/api/models/owner/m/settings", json={"gated": "auto"}, headers=owner)
        assert settings.status_code == 200, settings.text
        deadline = time.monotonic() + 5
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        [req] = receiver.requests
        assert json.loads(req.body)["event"] == "policy.changed"
        assert req.headers["X-Releasehub-Signature"] == sign(
            hook["secret"], req.headers["X-Releasehub-Timestamp"], req.body)

        rows = client.get(f"{api}/{hook['id']}/deliveries", headers=owner).json()
        assert [(r["event"], r["attempts"]) for r in rows] == [("policy.changed", 1)]
        assert rows[0]["status"] in ("pending", "delivered")  # the answer may still be on its way

        assert client.get(f"{api}/999999/deliveries", headers=owner).status_code == 404
        # Ids beyond a 32-bit integer are refused before they reach the database.
        assert client.get(f"{api}/{2**40}/deliveries", headers=owner).status_code in (400, 422)
        assert client.delete(f"{api}/{2**40}", headers=owner).status_code in (400, 422)
        assert client.delete(f"{api}/{hook['id']}", headers=owner).json() == {"deleted": hook["id"]}
        assert client.get(api, headers=owner).json() == []
        assert client.delete(f"{api}/{hook['id']}", headers=owner).status_code == 404


# ------------------------------------------------------------------ IPv4 inside IPv6 addresses (hardening)
# An IPv6 address that carries an IPv4 address reaches that IPv4 address through a translator or a
# tunnel, so the IPv4 address is what is judged (targets.reached).


@pytest.mark.parametrize("host, inner", [
    ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped
    ("::ffff:0:a00:1", "10.0.0.1"),  # IPv4-translated (SIIT)
    ("::7f00:1", "127.0.0.1"),  # IPv4-compatible (deprecated)
    ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64, well-known prefix
    ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64 to the cloud metadata endpoint
    ("2002:a00:1::1", "10.0.0.1"),  # 6to4
    ("2002:7f00:1::", "127.0.0.1"),
])
def test_an_embedded_private_ipv4_address_is_refused(host: str, inner: str) -> None:
    with pytest.raises(TargetRefused, match="private, loopback or reserved") as raised:
        check_target(f"http://[{host}]:8080/x")
    assert inner in str(raised.value)
    check_target(f"http://[{host}]:8080/x", parse_networks("10.0.0.0/8,127.0.0.0/8,169.254.0.0/16"))


@pytest.mark.parametrize("host", ["::ffff:93.184.215.14", "64:ff9b::5db8:d70e", "2002:5db8:d70e::1"])
def test_an_embedded_public_ipv4_address_passes(host: str) -> None:
    check_target(f"https://[{host}]/x")


def test_local_use_nat64_is_refused_unless_allowed() -> None:
    url = "http://[64:ff9b:1::5db8:d70e]/x"  # a public IPv4 address, but through the operator's translator
    with pytest.raises(TargetRefused, match="local-use NAT64"):
        check_target(url)
    check_target(url, parse_networks("64:ff9b:1::/48"))
    with pytest.raises(TargetRefused, match="carries the IPv4 address 127.0.0.1"):
        check_target("http://[64:ff9b:1::7f00:1]/x", parse_networks("64:ff9b:1::/48"))


def test_teredo_is_refused_unless_allowed_and_its_client_is_judged() -> None:
    import ipaddress

    from releasehub.webhooks.targets import reached

    def teredo(server: str, client: str) -> str:
        # 2001:0000:<server>:<flags>:<port ^ 0xffff>:<client ^ 0xffffffff>
        value = (0x20010000 << 96) | (int(ipaddress.IPv4Address(server)) << 64) | (0xFFFF << 32)
        return str(ipaddress.IPv6Address(value | (int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF)))

    public = teredo("65.54.227.120", PUBLIC)
    addresses, tunnel = reached(ipaddress.IPv6Address(public))
    assert tunnel and [str(a) for a in addresses[1:]] == ["65.54.227.120", PUBLIC]  # the client un-inverted
    with pytest.raises(TargetRefused, match="Teredo"):
        check_target(f"http://[{public}]/x")
    check_target(f"http://[{public}]/x", parse_networks("2001::/32"))
    loopback_client = teredo("65.54.227.120", "127.0.0.1")
    with pytest.raises(TargetRefused, match="carries the IPv4 address 127.0.0.1"):
        check_target(f"http://[{loopback_client}]/x", parse_networks("2001::/32"))


def test_plain_ipv6_is_judged_as_before() -> None:
    check_target("https://[2606:4700:4700::1111]/x")
    for host in ("::1", "::", "fe80::1", "fd00::1", "ff02::1"):
        with pytest.raises(TargetRefused):
            check_target(f"http://[{host}]/x")
