"""Signed checkpoints of the audit head: an anchor outside the database that catches a cut or re-chained log.

Each database test runs on a temporary SQLite file and, when the machine's PostgreSQL answers, on a
fresh PostgreSQL database.
"""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from releasehub.accounts import service as accounts
from releasehub.auditlog import checkpoint as checkpoints
from releasehub.auditlog import record, verify
from releasehub.auditlog.log import GENESIS, event_hash
from releasehub.auditlog.models import AuditEvent, AuditHead
from releasehub.cli.main import app
from releasehub.db import Database, utcnow
from releasehub.errors import BadRequest
from releasehub.repos.models import Repo
from releasehub.settings import Settings
from releasehub.webhooks import service as webhooks
from releasehub.webhooks.checkpoints import CheckpointSchedule, publish_checkpoint
from releasehub.webhooks.models import WebhookDelivery
from releasehub.webhooks.targets import parse_networks

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LOOPBACK = parse_networks("127.0.0.0/8")
runner = CliRunner()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'audit.db'}")
        database.upgrade()
        yield database
        database.dispose()
        return
    name = f"audit_cp_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    database = Database(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    database.upgrade()
    yield database
    database.dispose()
    with admin.connect() as c:
        c.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "audit-signing.key"


def url_of(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def fill(db: Database, n: int, start: int = 0) -> None:
    """n events, alternately by alice and bob."""
    with db.session() as s:
        for i in range(start, start + n):
            record(s, "file.downloaded", actor=("alice", "bob")[i % 2], repo="lab/m", path=f"f{i}", bytes=i)


def take_checkpoint(db: Database, key_file: Path, out: Path) -> checkpoints.Checkpoint:
    result = runner.invoke(app, ["audit", "checkpoint", "--database-url", url_of(db),
                                 "--key-file", str(key_file), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return checkpoints.Checkpoint.read(out)


def audit_verify(db: Database, key_file: Path, checkpoint: Path | None = None, *extra: str) -> Result:
    args = ["audit", "verify", "--database-url", url_of(db), "--key-file", str(key_file), *extra]
    if checkpoint is not None:
        args += ["--checkpoint", str(checkpoint)]
    return runner.invoke(app, args)


def tamper(db: Database, sql: str, **params: object) -> None:
    with db.engine.begin() as c:
        c.execute(sa.text(sql), params)


def rechain_without(db: Database, actor: str) -> None:
    """What an attacker with write access to the database does: drop someone's events, renumber the
    rest and recompute every hash and the head, so that the chain verifies again."""
    with db.session() as s:
        rows = [r for r in s.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)) if r.actor != actor]
        columns = ("at", "action", "actor", "repo", "revision", "path", "bytes", "ip", "details")
        kept = [{c: getattr(r, c) for c in columns} for r in rows]
        s.expunge_all()
        s.execute(sa.delete(AuditEvent))
        prev = GENESIS
        for seq, e in enumerate(kept, start=1):
            digest = event_hash(seq, e["at"], e["action"], e["actor"], e["repo"], e["revision"], e["path"],
                                e["bytes"], e["ip"], e["details"], prev)
            s.add(AuditEvent(seq=seq, prev_hash=prev, hash=digest, **e))
            prev = digest
        s.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(seq=len(kept), hash=prev))


# ------------------------------------------------------------------ the command and the key


def test_checkpoint_command_signs_the_head_with_a_key_file_outside_the_database(
        db: Database, key_file: Path, tmp_path: Path) -> None:
    fill(db, 5)
    cp = take_checkpoint(db, key_file, tmp_path / "cp.json")
    with db.session() as s:
        head = s.get(AuditHead, 1)
        assert head is not None and (cp.seq, cp.hash) == (head.seq, head.hash) == (5, head.hash)
    assert cp.key_id.startswith("ed25519:") and datetime.fromisoformat(cp.at).tzinfo is not None
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    public = checkpoints.load_public_key(checkpoints.public_key_path(key_file))
    checkpoints.check_signature(cp, public)  # does not raise
    assert checkpoints.key_id(public) == cp.key_id
    # The key is read again, not replaced, on the next run.
    assert take_checkpoint(db, key_file, tmp_path / "cp2.json").key_id == cp.key_id
    printed = runner.invoke(app, ["audit", "public-key", "--key-file", str(key_file)])
    assert printed.exit_code == 0 and checkpoints.public_pem(public) in printed.stdout
    # Nothing of the key is in the database.
    with db.engine.connect() as c:
        dumped = json.dumps([list(map(str, r)) for r in c.execute(sa.text("SELECT * FROM audit_events"))])
    assert key_file.read_text().splitlines()[1] not in dumped


def test_checkpoint_to_stdout(db: Database, key_file: Path) -> None:
    fill(db, 2)
    result = runner.invoke(app, ["audit", "checkpoint", "--database-url", url_of(db),
                                 "--key-file", str(key_file)])
    assert result.exit_code == 0, result.output
    cp = checkpoints.Checkpoint.from_json(result.stdout)
    assert cp.seq == 2 and cp.format == checkpoints.FORMAT


def test_checkpoint_refuses_a_missing_database_and_creates_none(tmp_path: Path, key_file: Path) -> None:
    data_dir = tmp_path / "not-a-data-dir"
    result = runner.invoke(app, ["audit", "checkpoint", "--data-dir", str(data_dir),
                                 "--key-file", str(key_file)])
    assert result.exit_code == 1
    assert f"no releasehub database at {(data_dir / 'releasehub.db').resolve()}" in result.output
    assert "releasehub db upgrade" in result.output
    assert "--data-dir" in result.output and "--database-url" in result.output
    assert not data_dir.exists() and not key_file.exists()
    missing = tmp_path / "nowhere.db"
    verify_result = runner.invoke(app, ["audit", "verify", "--database-url", f"sqlite:///{missing}"])
    assert verify_result.exit_code == 1 and str(missing) in verify_result.output and not missing.exists()


# ------------------------------------------------------------------ verify --checkpoint


def test_a_valid_checkpoint_on_an_intact_log_passes(db: Database, key_file: Path, tmp_path: Path) -> None:
    fill(db, 6)
    cp_file = tmp_path / "cp.json"
    take_checkpoint(db, key_file, cp_file)
    fill(db, 3, start=6)  # the log goes on after the checkpoint
    result = audit_verify(db, key_file, cp_file)
    assert result.exit_code == 0, result.output
    assert "intact: 9 events" in result.output and "checkpoint held: seq 6" in result.output


def test_a_checkpoint_of_an_empty_log_passes(db: Database, key_file: Path, tmp_path: Path) -> None:
    cp = take_checkpoint(db, key_file, tmp_path / "cp.json")
    assert (cp.seq, cp.hash) == (0, GENESIS)
    fill(db, 2)
    assert audit_verify(db, key_file, tmp_path / "cp.json").exit_code == 0


def test_truncated_tail_with_reset_head_passes_verify_but_not_the_checkpoint(
        db: Database, key_file: Path, tmp_path: Path) -> None:
    fill(db, 8)
    cp_file = tmp_path / "cp.json"
    take_checkpoint(db, key_file, cp_file)
    with db.session() as s:
        new_head = s.scalar(sa.select(AuditEvent.hash).where(AuditEvent.seq == 5))
    tamper(db, "DELETE FROM audit_events WHERE seq > 5")
    tamper(db, "UPDATE audit_head SET seq = 5, hash = :h WHERE id = 1", h=new_head)

    plain = audit_verify(db, key_file)
    assert plain.exit_code == 0 and "intact: 5 events" in plain.output  # the chain alone cannot tell
    anchored = audit_verify(db, key_file, cp_file)
    assert anchored.exit_code == 1
    assert "seq 8 is missing" in anchored.output and "log ends at seq 5" in anchored.output


def test_truncated_and_regrown_log_fails_with_the_checkpoint(db: Database, key_file: Path,
                                                             tmp_path: Path) -> None:
    # Cut below the checkpoint, then new events past its seq again: the event at seq now has another hash.
    fill(db, 6)
    cp_file = tmp_path / "cp.json"
    take_checkpoint(db, key_file, cp_file)
    with db.session() as s:
        new_head = s.scalar(sa.select(AuditEvent.hash).where(AuditEvent.seq == 3))
    tamper(db, "DELETE FROM audit_events WHERE seq > 3")
    tamper(db, "UPDATE audit_head SET seq = 3, hash = :h WHERE id = 1", h=new_head)
    fill(db, 4, start=100)
    assert audit_verify(db, key_file).exit_code == 0
    anchored = audit_verify(db, key_file, cp_file)
    assert anchored.exit_code == 1 and "hash differs at seq 6" in anchored.output


def test_deleting_a_users_events_and_rechaining_fails_with_the_checkpoint(
        db: Database, key_file: Path, tmp_path: Path) -> None:
    fill(db, 4)
    early = tmp_path / "early.json"
    take_checkpoint(db, key_file, early)  # seq 4
    fill(db, 6, start=4)
    late = tmp_path / "late.json"
    take_checkpoint(db, key_file, late)  # seq 10
    rechain_without(db, "bob")
    with db.session() as s:
        report = verify(s)
        assert report.ok and report.checked == 5  # re-chained: the chain alone verifies
    assert audit_verify(db, key_file).exit_code == 0

    at_early = audit_verify(db, key_file, early)
    assert at_early.exit_code == 1 and "hash differs at seq 4" in at_early.output
    at_late = audit_verify(db, key_file, late)
    assert at_late.exit_code == 1 and "seq 10 is missing" in at_late.output


@pytest.mark.parametrize("field,value", [("seq", 3), ("hash", "ab" * 32),
                                         ("at", "2020-01-01T00:00:00.000000+00:00")])
def test_a_tampered_checkpoint_file_fails_its_signature(db: Database, key_file: Path, tmp_path: Path,
                                                        field: str, value: object) -> None:
    fill(db, 6)
    cp_file = tmp_path / "cp.json"
    take_checkpoint(db, key_file, cp_file)
    data = json.loads(cp_file.read_text())
    data[field] = value
    cp_file.write_text(json.dumps(data))
    result = audit_verify(db, key_file, cp_file)
    assert result.exit_code == 1 and "bad signature" in result.output


def test_a_checkpoint_of_another_key_is_refused(db: Database, key_file: Path, tmp_path: Path) -> None:
    fill(db, 2)
    cp_file = tmp_path / "cp.json"
    take_checkpoint(db, key_file, cp_file)
    other = tmp_path / "other" / "audit-signing.key"
    checkpoints.SigningKey.load_or_create(other)
    result = audit_verify(db, key_file, cp_file, "--public-key", str(checkpoints.public_key_path(other)))
    assert result.exit_code == 1 and "was signed by key" in result.output
    # Forged with another key but claiming the right key id: the signature does not verify.
    cp = checkpoints.Checkpoint.read(cp_file)
    forged = checkpoints.sign(checkpoints.SigningKey.load_or_create(other), cp.seq, cp.hash)
    cp_file.write_text(json.dumps({**forged.to_dict(), "key_id": cp.key_id}))
    forged_result = audit_verify(db, key_file, cp_file)
    assert forged_result.exit_code == 1 and "bad signature" in forged_result.output


def test_a_malformed_checkpoint_file_is_refused(db: Database, key_file: Path, tmp_path: Path) -> None:
    fill(db, 1)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "releasehub-audit-checkpoint/1", "seq": 1}')
    result = audit_verify(db, key_file, bad)
    assert result.exit_code == 1 and "lacks hash" in result.output


# ------------------------------------------------------------------ the audit.checkpoint webhook event


def _repo_and_users(db: Database) -> Repo:
    with db.session() as s:
        accounts.create_user(s, "root", admin=True)
        accounts.create_user(s, "releaser")
        repo = Repo(namespace="lab", name=f"model-{uuid.uuid4().hex[:8]}", created_at=utcnow(),
                    updated_at=utcnow())
        s.add(repo)
    return repo


def _checkpoint_deliveries(db: Database) -> list[WebhookDelivery]:
    with db.session() as s:
        return list(s.scalars(sa.select(WebhookDelivery).where(WebhookDelivery.event == "audit.checkpoint")
                              .order_by(WebhookDelivery.created_at, WebhookDelivery.id)))


def test_only_a_server_admin_may_subscribe_to_checkpoints(db: Database) -> None:
    repo = _repo_and_users(db)
    with db.session() as s:
        with pytest.raises(BadRequest, match="server-wide event"):
            webhooks.register(s, repo, "http://127.0.0.1:9/hook", ["audit.checkpoint"], created_by="releaser",
                              allowed_networks=LOOPBACK)
        everything = webhooks.register(s, repo, "http://127.0.0.1:9/all", None, created_by="root",
                                       allowed_networks=LOOPBACK, server_admin=True)
        assert "audit.checkpoint" not in everything.events  # asked for by name only
        hook = webhooks.register(s, repo, "http://127.0.0.1:9/cp", ["audit.checkpoint"], created_by="root",
                                 allowed_networks=LOOPBACK, server_admin=True)
        assert hook.events == ["audit.checkpoint"]


def test_the_scheduled_checkpoint_goes_through_the_outbox_when_the_head_moved(
        db: Database, key_file: Path, tmp_path: Path) -> None:
    repo = _repo_and_users(db)
    with db.session() as s:
        webhooks.register(s, repo, "http://127.0.0.1:9/cp", ["audit.checkpoint"], created_by="root",
                          allowed_networks=LOOPBACK, server_admin=True)
        webhooks.register(s, repo, "http://127.0.0.1:9/repo-events", None, created_by="releaser",
                          allowed_networks=LOOPBACK)
    fill(db, 3)
    woken: list[int] = []
    schedule = CheckpointSchedule(db, key_file, 3600, on_queued=lambda: woken.append(1))

    assert schedule.run_once() == 1  # what the server's thread runs every RELEASEHUB_AUDIT_CHECKPOINT_SECONDS
    assert woken == [1]
    [delivery] = _checkpoint_deliveries(db)
    payload = delivery.payload
    assert payload["event"] == "audit.checkpoint" and payload["repo"] is None
    assert delivery.status == "pending"
    cp = checkpoints.Checkpoint.from_dict(payload["data"])
    assert cp.seq == 3 and set(payload["data"]) == {"format", "seq", "hash", "at", "key_id", "signature"}
    checkpoints.check_signature(cp, checkpoints.load_public_key(checkpoints.public_key_path(key_file)))
    assert "lab/" not in json.dumps(payload)  # names no repo or file

    # The head did not move: nothing new, on this replica or another one.
    assert schedule.run_once() == 0
    other = Database(url_of(db))
    try:
        with other.session() as s:
            assert publish_checkpoint(s, lambda: checkpoints.SigningKey.load_or_create(key_file)) == 0
    finally:
        other.dispose()

    fill(db, 2, start=3)
    assert schedule.run_once() == 1
    assert [d.payload["data"]["seq"] for d in _checkpoint_deliveries(db)] == [3, 5]

    # A receiver keeps the data as a file: `audit verify --checkpoint` takes it as it is.
    kept = tmp_path / "received.json"
    kept.write_text(json.dumps(_checkpoint_deliveries(db)[-1].payload["data"]))
    assert audit_verify(db, key_file, kept).exit_code == 0
    rechain_without(db, "bob")
    assert audit_verify(db, key_file, kept).exit_code == 1


def test_no_checkpoint_without_an_admin_subscriber(db: Database, key_file: Path) -> None:
    repo = _repo_and_users(db)
    fill(db, 2)
    with db.session() as s:
        webhooks.register(s, repo, "http://127.0.0.1:9/cp", ["audit.checkpoint"], created_by="root",
                          allowed_networks=LOOPBACK, server_admin=True)
    tamper(db, "UPDATE users SET is_admin = :f WHERE name = 'root'", f=False)  # root lost the admin role
    schedule = CheckpointSchedule(db, key_file, 3600)
    assert schedule.run_once() == 0
    assert _checkpoint_deliveries(db) == [] and not key_file.exists()  # no key made for nothing


def test_checkpoint_settings_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env({}, data_dir=tmp_path)
    assert settings.audit_checkpoint_seconds == 3600
    assert settings.audit_key_path == tmp_path / "audit-signing.key"
    custom = Settings.from_env({"RELEASEHUB_AUDIT_KEY_FILE": "/etc/releasehub/audit.key",
                                "RELEASEHUB_AUDIT_CHECKPOINT_SECONDS": "0"})
    assert custom.audit_key_path == Path("/etc/releasehub/audit.key") and custom.audit_checkpoint_seconds == 0
