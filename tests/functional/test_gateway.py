"""The gateway end to end: the real server, an engine process speaking the OpenAI protocol, the
unchanged `openai` client, and the operator CLI as subprocesses.

The engine is tests/engine/openai_engine.py (see its README for why it stands in for vLLM or
llama.cpp here). Engine faults are flags of separate engine processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from huggingface_hub import HfApi

from engine.openai_engine import start_engine, stop_engine
from releasehub.gateway.models import UsageDaily


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    process, base = start_engine(model="engine-model")
    yield base
    stop_engine(process)


_ADMINS: dict[str, str] = {}


def admin_token(server: Any) -> str:
    """A server admin's write token on this server, made once per server (its data dir names it)."""
    where = str(server.data_dir)
    if where not in _ADMINS:
        _ADMINS[where] = server.user(admin=True)[1]
    return _ADMINS[where]


def operator(server: Any, *args: str, check: bool = True, token: str | None = None
             ) -> subprocess.CompletedProcess[str]:
    """The CLI as the operator runs it: over HTTP, with a server admin's token unless `token` is given."""
    env = {**os.environ, "COLUMNS": "200", "HF_ENDPOINT": server.url, "HF_TOKEN": token or admin_token(server)}
    done = subprocess.run([sys.executable, "-m", "releasehub", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    if check:
        assert done.returncode == 0, done.stderr + done.stdout
    return done


TIERS = {
    "tiers": [
        {"name": "public", "components": ["documentation"],
         "api": {"requests_per_minute": 3, "max_tokens": 64}},
        {"name": "researcher", "components": ["documentation", "weights"],
         "api": {"tokens_per_minute": 400, "logprobs": True, "top_logprobs": 5, "echo": True}},
    ],
}


def hosted_repo(server: Any, api: HfApi, owner: tuple[str, str], engine: str, policy: dict | None = None,
                *extra: str) -> str:
    repo_id = f"{owner[0]}/hosted-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"weights", path_in_repo="model.safetensors", repo_id=repo_id)
    put = httpx.put(f"{server.url}/api/models/{repo_id}/policy", json=policy or TIERS,
                    headers={"Authorization": f"Bearer {owner[1]}"})
    assert put.status_code == 200, put.text
    operator(server, "hosted", "attach", repo_id, "--backend", f"{engine}/v1", "--model", "engine-model",
             "--hosted-only", *extra)
    return repo_id


def new_key(server: Any, user: str, repo_id: str, tier: str) -> str:
    return operator(server, "keys", "create", user, "--repo", repo_id, "--tier", tier).stdout.strip().splitlines()[-1]


_OPEN: list[openai.OpenAI] = []


def client(server: Any, key: str) -> openai.OpenAI:
    made = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    _OPEN.append(made)
    return made


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def away_from_minute_edge() -> None:
    """Limits use fixed minute windows: start a burst that must stay inside one window well before its end."""
    into = time.time() % 60
    if into > 45:
        time.sleep(60.5 - into)


def wait_for_usage(server: Any, repo_id: str, requests: int, timeout: float = 10) -> UsageDaily:
    namespace, name = repo_id.split("/")
    deadline = time.monotonic() + timeout
    while True:
        with server.db.session() as session:
            from releasehub.repos.models import Repo

            repo = session.query(Repo).filter_by(namespace=namespace, name=name).one()
            rows = session.query(UsageDaily).filter_by(repo_id=repo.id).all()
            total = sum(r.requests for r in rows)
            if total >= requests or time.monotonic() > deadline:
                assert total == requests, (total, requests)
                session.expunge_all()
                return rows[0]
        time.sleep(0.2)


def test_chat_streaming_usage_and_hosted_only(server: Any, api: HfApi, owner: tuple[str, str], engine: str) -> None:
    repo_id = hosted_repo(server, api, owner, engine)
    user, user_token = server.user()
    key = new_key(server, user, repo_id, "researcher")
    c = client(server, key)
    assert [m.id for m in c.models.list()] == [repo_id]
    assert c.models.retrieve(repo_id).id == repo_id
    with pytest.raises(openai.NotFoundError) as missing:
        c.models.retrieve(f"{owner[0]}/not-hosted-here")
    assert missing.value.code == "model_not_found"

    reply = c.chat.completions.with_raw_response.create(
        model=repo_id, messages=[{"role": "user", "content": "one two three four"}], max_tokens=3)
    chat = reply.parse()
    assert chat.model == "engine-model" and chat.usage.completion_tokens == 3
    assert chat.choices[0].finish_reason == "length" and chat.choices[0].message.content
    assert reply.headers["x-ratelimit-limit-tokens"] == "400"
    assert 0 <= int(reply.headers["x-ratelimit-remaining-tokens"]) < 400

    chunks = list(c.chat.completions.create(model=repo_id, messages=[{"role": "user", "content": "a b c"}],
                                            max_tokens=5, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text and chunks[-1].usage.completion_tokens == len(text.split())
    # Without include_usage the client gets no usage chunk, though the gateway asked the engine for one.
    plain = list(c.chat.completions.create(model=repo_id, messages=[{"role": "user", "content": "a b"}],
                                           max_tokens=2, stream=True))
    assert all(ch.usage is None for ch in plain) and all(ch.choices for ch in plain)
    plain_tokens = len("".join(ch.choices[0].delta.content or "" for ch in plain).split())
    forwarded = httpx.get(f"{engine}/_test/requests").json()
    assert forwarded[-1]["body"]["stream_options"] == {"include_usage": True}
    assert forwarded[-1]["body"]["model"] == "engine-model"

    logprobs = c.chat.completions.create(model=repo_id, messages=[{"role": "user", "content": "x y"}],
                                         max_tokens=2, logprobs=True, top_logprobs=3)
    assert len(logprobs.choices[0].logprobs.content[0].top_logprobs) == 3
    # The weights of a hosted-only release never leave the server, not even for the owner; for
    # outsiders the public tier hides them altogether (a hidden file answers as a missing one).
    got = httpx.get(f"{server.url}/{repo_id}/resolve/main/model.safetensors",
                    headers={"Authorization": f"Bearer {owner[1]}"})
    assert got.status_code == 403 and got.headers["x-error-code"] == "HostedOnly"
    assert httpx.get(f"{server.url}/{repo_id}/resolve/main/model.safetensors").status_code == 404
    # A writer's card cannot open them: hosted_only is the admin's, like visibility.
    api.upload_file(path_or_fileobj=b"---\nreleasehub:\n  hosted_only: false\n---\n# card\n",
                    path_in_repo="README.md", repo_id=repo_id)
    got = httpx.get(f"{server.url}/{repo_id}/resolve/main/model.safetensors",
                    headers={"Authorization": f"Bearer {owner[1]}"})
    assert got.status_code == 403 and got.headers["x-error-code"] == "HostedOnly"
    out_tokens = (chat.usage.completion_tokens + chunks[-1].usage.completion_tokens + plain_tokens
                  + logprobs.usage.completion_tokens)
    row = wait_for_usage(server, repo_id, 4)
    assert row.prompt_tokens > 0 and row.completion_tokens == out_tokens
    usage = json.loads(operator(server, "usage", "--repo", repo_id, "--by", "key", "--json").stdout)
    assert usage["requests"] == 4 and usage["completion_tokens"] == out_tokens
    # The same over HTTP: the releaser sees every key of the repo, the key's user their own, others nothing.
    for token, expected in ((owner[1], 4), (user_token, 4), (server.user()[1], 0)):
        rows = httpx.get(f"{server.url}/api/gateway/usage", params={"repo": repo_id},
                         headers={"Authorization": f"Bearer {token}"}).json()
        assert sum(r["requests"] for r in rows) == expected


def test_limits_depth_and_refusals(server: Any, api: HfApi, owner: tuple[str, str], engine: str) -> None:
    repo_id = hosted_repo(server, api, owner, engine)
    user, _ = server.user()
    c = client(server, new_key(server, user, repo_id, "public"))
    ask = {"model": repo_id, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4}
    with pytest.raises(openai.PermissionDeniedError) as denied:
        c.chat.completions.create(**ask, logprobs=True)
    assert "'researcher' tier allows logprobs" in denied.value.message
    with pytest.raises(openai.BadRequestError, match="more than your tier's 64"):
        c.chat.completions.create(**{**ask, "max_tokens": 100})
    away_from_minute_edge()
    for _ in range(3):
        c.chat.completions.create(**ask)
    with pytest.raises(openai.RateLimitError) as limited:
        c.chat.completions.create(**ask)
    error = limited.value
    assert error.code == "rate_limit_exceeded" and int(error.response.headers["retry-after"]) >= 1
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.body["type"] == "requests" and "requests per minute" in error.body["message"]


def test_revocation_kill_switch_and_policy_hook(server: Any, api: HfApi, owner: tuple[str, str], engine: str) -> None:
    repo_id = hosted_repo(server, api, owner, engine)
    user, _ = server.user()
    key = new_key(server, user, repo_id, "researcher")
    c = client(server, key)
    ask = {"model": repo_id, "messages": [{"role": "user", "content": "tell me about the weather"}],
           "max_tokens": 2}
    c.chat.completions.create(**ask)

    operator(server, "hosted", "hook", repo_id, "--block", r"forbidden\s+topic")
    with pytest.raises(openai.BadRequestError) as refused:
        c.chat.completions.create(**{**ask, "messages": [{"role": "user", "content": "a Forbidden  topic"}]})
    assert refused.value.code == "content_policy_violation"
    c.chat.completions.create(**ask)

    operator(server, "hosted", "disable", repo_id, "--reason", "incident 42")
    with pytest.raises(openai.InternalServerError) as off:
        c.chat.completions.create(**ask)
    assert off.value.status_code == 503 and "incident 42" in off.value.message
    operator(server, "hosted", "enable", repo_id)
    c.chat.completions.create(**ask)

    operator(server, "keys", "revoke", key.split(".")[0], "--reason", "abuse")
    with pytest.raises(openai.AuthenticationError, match="revoked: abuse"):
        c.chat.completions.create(**ask)
    # Someone else's key does not reveal that the repo exists.
    other, _ = server.user()
    other_repo = hosted_repo(server, api, owner, engine)
    stranger = client(server, new_key(server, other, other_repo, "public"))
    with pytest.raises(openai.NotFoundError):
        stranger.chat.completions.create(**ask)
    with server.db.session() as session:
        from releasehub.auditlog.models import AuditEvent

        events = [e.details for e in session.query(AuditEvent).filter_by(repo=repo_id, action="gateway.request")]
    assert {e["outcome"] for e in events} >= {"ok", "refused"}
    assert all("prompt" not in e for e in events)  # prompts are not stored unless the releaser says so


def test_engine_failures(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    user, _ = server.user()
    down, base_down = start_engine(model="engine-model")
    stop_engine(down)
    broken, base_broken = start_engine(model="engine-model", fail_after_chunks=2)
    slow, base_slow = start_engine(model="engine-model", delay_ms=3000)
    try:
        repo_down = hosted_repo(server, api, owner, base_down)
        c = client(server, new_key(server, user, repo_down, "researcher"))
        ask = {"model": repo_down, "messages": [{"role": "user", "content": "a b c d e f"}], "max_tokens": 5}
        with pytest.raises(openai.APIStatusError) as unreachable:
            c.chat.completions.create(**ask)
        assert unreachable.value.status_code == 502 and "unreachable" in unreachable.value.message

        repo_slow = hosted_repo(server, api, owner, base_slow, None, "--timeout", "1")
        c = client(server, new_key(server, user, repo_slow, "researcher"))
        with pytest.raises(openai.APIStatusError) as timeout:
            c.chat.completions.create(**{**ask, "model": repo_slow})
        assert timeout.value.status_code == 504

        repo_broken = hosted_repo(server, api, owner, base_broken)
        c = client(server, new_key(server, user, repo_broken, "researcher"))
        with pytest.raises(openai.APIError, match="stream broke off"):
            for _ in c.chat.completions.create(**{**ask, "model": repo_broken}, stream=True):
                pass
        row = wait_for_usage(server, repo_broken, 1)
        assert row.errors == 1 and row.completion_tokens == 2  # estimated from the chunks that came
    finally:
        stop_engine(broken)
        stop_engine(slow)


def test_two_replicas_share_one_budget_through_redis(tmp_path_factory: pytest.TempPathFactory, engine: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import redis

    from conftest import start_server, stop_server

    url = "redis://127.0.0.1:6379/14"
    try:
        redis.Redis.from_url(url).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    env = {"RELEASEHUB_REDIS_URL": url, "ENGINE_KEY": "sk-engine-secret"}
    locked, locked_url = start_engine(model="engine-model", api_key="sk-engine-secret")
    first = start_server(tmp_path_factory.mktemp("replica-a"), "", env)
    second = start_server(tmp_path_factory.mktemp("replica-b"), first.database_url, env)
    try:
        owner, token = first.user()
        hub = HfApi(endpoint=first.url, token=token)
        policy = {"api": {"requests_per_minute": 5}}
        # The engine wants its own key, which the gateway takes from the server's environment.
        repo_id = hosted_repo(first, hub, (owner, token), locked_url, policy, "--api-key-env", "ENGINE_KEY")
        key = new_key(first, owner, repo_id, "default")
        body = {"model": repo_id, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}

        def call(i: int) -> int:
            target = (first, second)[i % 2]
            return httpx.post(f"{target.url}/v1/chat/completions", json=body,
                              headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code

        away_from_minute_edge()
        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(pool.map(call, range(12)))
        assert sorted(statuses) == [200] * 5 + [429] * 7, statuses
        seen = httpx.get(f"{locked_url}/_test/requests").json()
        assert {r["headers"]["authorization"] for r in seen if r["path"].endswith("/completions")} == {
            "Bearer sk-engine-secret"}
    finally:
        stop_server(second)
        stop_server(first)
        stop_engine(locked)


def test_completions_depth_and_moderation(server: Any, api: HfApi, owner: tuple[str, str], engine: str) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Moderation(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            answer = json.dumps({"results": [{"flagged": "dangerous" in body["input"]}]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    moderation = HTTPServer(("127.0.0.1", 0), Moderation)
    threading.Thread(target=moderation.serve_forever, daemon=True).start()
    try:
        repo_id = hosted_repo(server, api, owner, engine)
        operator(server, "hosted", "hook", repo_id, "--moderation-url",
                 f"http://127.0.0.1:{moderation.server_port}/moderate")
        user, _ = server.user()
        researcher = client(server, new_key(server, user, repo_id, "researcher"))
        public = client(server, new_key(server, user, repo_id, "public"))
        done = researcher.completions.create(model=repo_id, prompt="alpha beta gamma", max_tokens=2, echo=True,
                                             logprobs=2)
        assert done.choices[0].text.startswith("alpha beta gamma") and done.usage.completion_tokens == 2
        assert done.choices[0].logprobs is not None
        with pytest.raises(openai.PermissionDeniedError, match="'researcher' tier allows echo"):
            public.completions.create(model=repo_id, prompt="alpha beta", max_tokens=2, echo=True)
        with pytest.raises(openai.BadRequestError) as flagged:
            researcher.completions.create(model=repo_id, prompt="something dangerous", max_tokens=2)
        assert flagged.value.code == "content_policy_violation" and "moderation" in flagged.value.message
    finally:
        moderation.shutdown()
        moderation.server_close()


def test_client_hanging_up_mid_stream_stops_the_call(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    """The client closes a stream after its first token: the gateway closes the engine's stream too,
    frees the concurrency slot, settles what came, and meters the call as cancelled."""
    slow, base = start_engine(model="engine-model", delay_ms=300)
    try:
        policy = {"tiers": [{"name": "one-at-a-time", "components": ["documentation"], "api": {"concurrency": 1}}]}
        repo_id = hosted_repo(server, api, owner, base, policy)
        user, _ = server.user()
        key = new_key(server, user, repo_id, "one-at-a-time")
        words = " ".join(f"w{i}" for i in range(40))  # 40 tokens back: about 12 s at 300 ms a chunk
        body = {"model": repo_id, "messages": [{"role": "user", "content": words}], "max_tokens": 40, "stream": True}
        with (httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
              http.stream("POST", "/v1/chat/completions", json=body) as answer):
            assert answer.status_code == 200
            for line in answer.iter_lines():
                if line.startswith("data:") and '"content": "w' in line.replace('":"', '": "'):
                    break  # the first token; hang up
        deadline = time.monotonic() + 8  # well before the engine would have finished the stream
        event = None
        while event is None and time.monotonic() < deadline:
            with server.db.session() as session:
                from releasehub.auditlog.models import AuditEvent

                found = session.query(AuditEvent).filter_by(repo=repo_id, action="gateway.request").all()
                event = found[0].details if found else None
            time.sleep(0.2)
        assert event is not None, "the cancelled call was not metered before the stream would have ended"
        assert event["outcome"] == "cancelled" and event["status"] == 499
        assert event["usage_estimated"] is True and 1 <= event["tokens_out"] < 40
        # The slot is free again: a second call is not refused for concurrency.
        done = client(server, key).chat.completions.create(model=repo_id, max_tokens=1,
                                                           messages=[{"role": "user", "content": "a b"}])
        assert done.choices[0].message.content == "b"
    finally:
        stop_engine(slow)


def test_client_hanging_up_while_the_engine_thinks(server: Any, api: HfApi, owner: tuple[str, str]) -> None:
    """A non-streaming call whose client gives up before the engine answers (a client timeout) is
    cut off at the engine too, metered as cancelled, and its concurrency slot freed."""
    slow, base = start_engine(model="engine-model", delay_ms=6000)  # answers after 6 s
    try:
        policy = {"tiers": [{"name": "one-at-a-time", "components": ["documentation"], "api": {"concurrency": 1}}]}
        repo_id = hosted_repo(server, api, owner, base, policy)
        user, _ = server.user()
        key = new_key(server, user, repo_id, "one-at-a-time")
        body = {"model": repo_id, "messages": [{"role": "user", "content": "a b c"}], "max_tokens": 3}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"},
                       timeout=1.5)
        deadline = time.monotonic() + 3.5  # well before the engine would have answered
        event = None
        while event is None and time.monotonic() < deadline:
            with server.db.session() as session:
                from releasehub.auditlog.models import AuditEvent

                found = session.query(AuditEvent).filter_by(repo=repo_id, action="gateway.request").all()
                event = found[0].details if found else None
            time.sleep(0.1)
        assert event is not None, "the abandoned call was not metered before the engine answered"
        assert event["outcome"] == "cancelled" and event["status"] == 499
        # Nothing came back: the prompt is charged as estimated (the engine read it), no completion.
        assert event["tokens_in"] == 2 and event["tokens_out"] == 0 and event["usage_estimated"] is True  # "a b c": 5 chars
    finally:
        stop_engine(slow)


def test_a_call_longer_than_its_lease_keeps_its_concurrency_slot(tmp_path_factory: pytest.TempPathFactory) -> None:
    """With a 2 s lease, a stream that runs about 5 s still holds its only slot after 3 s (renewed at
    half the lease), and frees it when it ends."""
    from conftest import start_server, stop_server

    slow, base = start_engine(model="engine-model", delay_ms=300)
    hub = start_server(tmp_path_factory.mktemp("lease"), "", {"RELEASEHUB_GATEWAY_LEASE_SECONDS": "2"})
    try:
        owner, token = hub.user()
        repo_id = hosted_repo(hub, HfApi(endpoint=hub.url, token=token), (owner, token), base,
                              {"api": {"concurrency": 1}})
        key = new_key(hub, owner, repo_id, "default")
        auth = {"Authorization": f"Bearer {key}"}
        words = " ".join(f"w{i}" for i in range(16))
        body = {"model": repo_id, "messages": [{"role": "user", "content": words}], "max_tokens": 16, "stream": True}
        with httpx.Client(base_url=hub.url, headers=auth, timeout=30) as http:
            started = time.monotonic()
            with http.stream("POST", "/v1/chat/completions", json=body) as long_call:
                assert long_call.status_code == 200
                lines = long_call.iter_lines()
                while time.monotonic() - started < 3.0:  # past the first lease's end
                    assert next(lines) is not None
                second = http.post("/v1/chat/completions", json={**body, "stream": False, "max_tokens": 1})
                assert second.status_code == 429, second.text
                assert "requests in flight" in second.json()["error"]["message"]
                rest = list(lines)
            assert any("[DONE]" in line for line in rest)
            after = http.post("/v1/chat/completions", json={**body, "stream": False, "max_tokens": 1})
            assert after.status_code == 200, after.text
    finally:
        stop_server(hub)
        stop_engine(slow)


CAPPED = {"tiers": [
    {"name": "capped", "components": ["documentation"],
     "api": {"max_tokens": 100, "max_context": 1000, "tokens_per_minute": 1000, "logprobs": True, "top_logprobs": 2}},
]}


def test_caps_are_always_forwarded_and_n_is_charged(server: Any, api: HfApi, owner: tuple[str, str],
                                                      engine: str) -> None:
    """A tier of max_tokens 100: a call naming no cap gets 100 tokens, not the 150 the engine would
    write; both caps are held to the tier; n multiplies the tokens charged up front."""
    repo_id = hosted_repo(server, api, owner, engine, CAPPED)
    user, _ = server.user()
    c = client(server, new_key(server, user, repo_id, "capped"))
    words = " ".join(f"w{i}" for i in range(150))
    chat = c.chat.completions.create(model=repo_id, messages=[{"role": "user", "content": words}])
    assert chat.usage.completion_tokens == 100 and chat.choices[0].finish_reason == "length"
    assert httpx.get(f"{engine}/_test/requests").json()[-1]["body"]["max_tokens"] == 100
    done = c.completions.create(model=repo_id, prompt=words)
    assert done.usage.completion_tokens == 100
    sent = httpx.get(f"{engine}/_test/requests").json()[-1]["body"]
    assert sent["max_tokens"] == 100 and sent["prompt"] == words
    ask = {"model": repo_id, "messages": [{"role": "user", "content": "a b"}]}
    with pytest.raises(openai.BadRequestError) as both:
        c.chat.completions.create(**ask, max_tokens=150, max_completion_tokens=50)
    assert both.value.code == "max_tokens_exceeded" and both.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError) as many:  # 12 choices of 100 tokens: more than 1000 a minute
        c.chat.completions.create(**ask, max_tokens=100, n=12)
    assert many.value.code == "rate_limit_exceeded" and "12 choices" in many.value.message
    with pytest.raises(openai.BadRequestError) as typed:
        c.chat.completions.create(**ask, max_tokens=2, n="2")  # type: ignore[arg-type]
    assert typed.value.code == "invalid_type" and typed.value.param == "n"


def test_depth_extensions_and_what_the_checks_read(server: Any, api: HfApi, owner: tuple[str, str],
                                                   engine: str) -> None:
    """vLLM's prompt_logprobs needs the tier's echo; the blocklist reads tools, names and text split by
    invisible characters; CJK text is estimated by its bytes against the tier's context."""
    repo_id = hosted_repo(server, api, owner, engine, CAPPED)
    user, _ = server.user()
    c = client(server, new_key(server, user, repo_id, "capped"))
    ask = {"model": repo_id, "prompt": "alpha beta", "max_tokens": 2}
    with pytest.raises(openai.PermissionDeniedError) as deep:
        c.completions.create(**ask, extra_body={"prompt_logprobs": 1})
    assert deep.value.code == "depth_not_allowed" and deep.value.body["param"] == "prompt_logprobs"
    with pytest.raises(openai.BadRequestError) as typed:
        c.completions.create(**ask, logprobs="2")  # type: ignore[arg-type]
    assert typed.value.code == "invalid_type" and typed.value.body["param"] == "logprobs"
    assert "Invalid type for 'logprobs'" in typed.value.message  # the gateway's answer, not the engine's

    operator(server, "hosted", "hook", repo_id, "--block", r"forbidden\s+topic")
    chat = {"model": repo_id, "max_tokens": 2}
    tools = [{"type": "function", "function": {"name": "lookup", "description": "explain a forbidden topic",
                                               "parameters": {"type": "object", "properties": {}}}}]
    for call in ({"messages": [{"role": "user", "content": "forbid\u200bden topic"}]},
                 {"messages": [{"role": "user", "content": "ｆｏｒｂｉｄｄｅｎ topic"}]},
                 {"messages": [{"role": "user", "content": "hi"}], "tools": tools},
                 {"messages": [{"role": "user", "name": "forbidden topic", "content": "hi"}]}):
        with pytest.raises(openai.BadRequestError) as refused:
            c.chat.completions.create(**chat, **call)
        assert refused.value.code == "content_policy_violation", call
    with pytest.raises(openai.BadRequestError) as suffix:
        c.completions.create(**ask, suffix="a forbidden topic")
    assert suffix.value.code == "content_policy_violation"
    with pytest.raises(openai.BadRequestError) as long:  # 1200 characters, 3600 bytes: about 1200 tokens
        c.chat.completions.create(**chat, messages=[{"role": "user", "content": "中" * 1200}])
    assert long.value.code == "context_length_exceeded"
    assert c.chat.completions.create(**chat, messages=[{"role": "user", "content": "中" * 600}]).usage
