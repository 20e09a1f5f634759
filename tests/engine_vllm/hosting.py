"""What the vLLM tests share: the CLI over HTTP, hosted repos holding the tiny model, and reads of
the gateway's metering and of vLLM's metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------------------------
# The releaser's and the operator's side, as in tests/functional/test_gateway.py: the CLI over HTTP


_ADMINS: dict[str, str] = {}


def admin_token(server: Any) -> str:
    where = str(server.data_dir)
    if where not in _ADMINS:
        _ADMINS[where] = server.user(admin=True)[1]
    return _ADMINS[where]


def cli(server: Any, *args: str, token: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`releasehub ARGS` over HTTP, with a server admin's token unless `token` is given."""
    env = {**os.environ, "COLUMNS": "200", "HF_ENDPOINT": server.url, "HF_TOKEN": token or admin_token(server)}
    done = subprocess.run([sys.executable, "-m", "releasehub", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    if check:
        assert done.returncode == 0, done.stderr + done.stdout
    return done


class Hosting:
    """Makes hosted repos on the live server, each holding the tiny model and served by vLLM."""

    def __init__(self, server: Any, engine: Any, model_dir: Path, tmp: Path) -> None:
        self.server, self.engine, self.model_dir, self.tmp = server, engine, model_dir, tmp
        self.owner, self.owner_token = server.user()

    def repo(self, policy_yaml: str) -> str:
        from huggingface_hub import HfApi

        repo_id = f"{self.owner}/hosted-{uuid.uuid4().hex[:6]}"
        api = HfApi(endpoint=self.server.url, token=self.owner_token)
        api.create_repo(repo_id)
        api.upload_folder(folder_path=str(self.model_dir), repo_id=repo_id, commit_message="the tiny model")
        policy = self.tmp / f"{repo_id.replace('/', '_')}.yaml"
        policy.write_text(policy_yaml)
        cli(self.server, "policy", "set", repo_id, str(policy), token=self.owner_token)
        cli(self.server, "hosted", "attach", repo_id, "--backend", f"{self.engine.url}/v1", "--model",
            self.engine.model, "--hosted-only")
        return repo_id

    def key(self, repo_id: str, tier: str) -> str:
        user, _ = self.server.user()
        out = cli(self.server, "keys", "create", user, "--repo", repo_id, "--tier", tier, token=self.owner_token)
        return out.stdout.strip().splitlines()[-1]

    def client(self, key: str) -> Any:
        import openai

        return openai.OpenAI(base_url=f"{self.server.url}/v1", api_key=key, max_retries=0, timeout=120)


def usage_events(server: Any, repo_id: str, count: int, timeout: float = 15) -> list[dict[str, Any]]:
    """The gateway.request audit events of `repo_id`, once `count` of them are written (metering is
    written off the request path, in batches), oldest first."""
    from releasehub.auditlog.models import AuditEvent

    deadline = time.monotonic() + timeout
    while True:
        with server.db.session() as session:
            found = [e.details for e in session.query(AuditEvent).filter_by(repo=repo_id, action="gateway.request")
                     .order_by(AuditEvent.seq)]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) == count, found
            return found
        time.sleep(0.2)


def daily_usage(server: Any, repo_id: str) -> tuple[int, int, int]:
    """(requests, prompt tokens, completion tokens) of `repo_id` in the daily counters."""
    from releasehub.gateway.models import UsageDaily
    from releasehub.repos.models import Repo

    namespace, name = repo_id.split("/")
    with server.db.session() as session:
        repo = session.query(Repo).filter_by(namespace=namespace, name=name).one()
        rows = session.query(UsageDaily).filter_by(repo_id=repo.id).all()
        return (sum(r.requests for r in rows), sum(r.prompt_tokens for r in rows),
                sum(r.completion_tokens for r in rows))


def away_from_minute_edge() -> None:
    """Token limits use fixed minute windows: a check of the charge must run inside one window."""
    into = time.time() % 60
    if into > 40:
        time.sleep(60.5 - into)


def requests_seen(engine: Any) -> float:
    """Requests vLLM has finished, whatever their end (length, stop, abort, error)."""
    return sum(v for k, v in engine.metrics().items() if k.startswith("vllm:request_success_total{"))
