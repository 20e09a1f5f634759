"""The test engine (tests/engine/openai_engine.py) speaks the OpenAI API as the official client expects.

It runs as a real subprocess (granian) and is driven with the `openai` client and with raw httpx,
so the gateway's tests can rely on its shapes, its SSE framing and its fault injection.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import httpx
import openai
import pytest

from engine.openai_engine import (
    expected_completion,
    prompt_tokens_of,
    running_engine,
    start_engine,
    stop_engine,
)

MODEL = "echo-model"
OTHER = "other-model"
PROMPT = "the quick brown fox jumps over the lazy dog"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    process, url = start_engine(model=[MODEL, OTHER])
    try:
        yield url
    finally:
        stop_engine(process)


@pytest.fixture
def client(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test", max_retries=0, timeout=10) as c:
        yield c


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as c:
        yield c


def sse_events(text: str) -> list[str]:
    """The data of each SSE event; asserts the framing is exactly `data: ...\\n\\n`."""
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    assert all(e.startswith("data: ") and "\n" not in e for e in events), events
    return [e[len("data: "):] for e in events]


def post_stream(http: httpx.Client, path: str, body: dict[str, Any], **headers: str) -> list[str]:
    with http.stream("POST", path, json={**body, "stream": True}, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_events(response.read().decode())


def chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "system", "content": "be brief"},
                                         {"role": "user", "content": content}], **extra}


def assert_error(response: httpx.Response, status: int, *, param: str | None = None,
                 code: str | None = None, type: str = "invalid_request_error") -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and error["type"] == type
    assert (error["param"], error["code"]) == (param, code)
    return error


# --------------------------------------------------------------------------- the deterministic "model"


def test_expected_completion_reverses_words_and_cuts() -> None:
    assert expected_completion("one two  three") == ("three two one", "stop")
    assert expected_completion("one two three", max_tokens=2) == ("three two", "length")
    assert expected_completion("one two three", max_tokens=3) == ("three two one", "stop")
    assert expected_completion("one two three", stop=" tw") == ("three", "stop")
    assert expected_completion("one two three", stop=["hre", "x"]) == ("t", "stop")
    assert expected_completion("one two three", max_tokens=1, stop="two") == ("three", "length")
    assert expected_completion("   ") == ("", "stop")
    assert prompt_tokens_of(" a b  c ") == [" a", " b", "  c "]


# --------------------------------------------------------------------------- with the openai client


def test_models(client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL, OTHER]
    assert all(m.object == "model" and m.owned_by == "engine" and m.created > 0 for m in models)
    assert client.models.retrieve(OTHER).id == OTHER
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("nope")
    assert info.value.code == "model_not_found"


def test_chat_completion(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(model=OTHER, messages=[
        {"role": "user", "content": "ignored earlier turn"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
    ], temperature=0.0)
    text, finish = expected_completion(PROMPT)
    assert result.id.startswith("chatcmpl-") and result.object == "chat.completion" and result.model == OTHER
    assert result.created > 0 and len(result.choices) == 1
    choice = result.choices[0]
    assert (choice.index, choice.message.role, choice.message.content) == (0, "assistant", text)
    assert choice.finish_reason == finish == "stop" and choice.logprobs is None
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (13, 9, 22)


def test_chat_max_tokens_and_stop(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": PROMPT}]
    limited = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=3)
    assert limited.choices[0].message.content == "dog lazy the"
    assert limited.choices[0].finish_reason == "length" and limited.usage and limited.usage.completion_tokens == 3
    newer = client.chat.completions.create(model=MODEL, messages=messages, max_completion_tokens=2)
    assert (newer.choices[0].message.content, newer.choices[0].finish_reason) == ("dog lazy", "length")
    stopped = client.chat.completions.create(model=MODEL, messages=messages, stop=["over", "zzz"])
    assert (stopped.choices[0].message.content, stopped.choices[0].finish_reason) == ("dog lazy the ", "stop")


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}],
                                            max_tokens=4, stream=True, stream_options={"include_usage": True})
    with stream:
        chunks = list(stream)
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    first, *content, finish, last = chunks
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    assert [c.choices[0].delta.content for c in content] == ["dog", " lazy", " the", " over"]
    assert all(c.choices[0].finish_reason is None and c.usage is None for c in [first, *content, finish][:-1])
    assert finish.choices[0].finish_reason == "length" and finish.choices[0].delta.content is None
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (9, 4, 13)


def test_chat_logprobs(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}],
                                            max_tokens=5, logprobs=True, top_logprobs=3)
    choice = result.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    entries = choice.logprobs.content
    assert "".join(e.token for e in entries) == choice.message.content and len(entries) == 5
    for entry in entries:
        assert -1 < entry.logprob < 0 and bytes(entry.bytes or []).decode() == entry.token
        assert len(entry.top_logprobs) == 3 and entry.top_logprobs[0].token == entry.token
        values = [t.logprob for t in entry.top_logprobs]
        assert values == sorted(values, reverse=True) and len({t.token for t in entry.top_logprobs}) == 3
    plain = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a b"}],
                                           logprobs=True)
    assert plain.choices[0].logprobs and [e.top_logprobs for e in plain.choices[0].logprobs.content or []] == [[], []]


def test_chat_stream_logprobs_per_chunk(http: httpx.Client) -> None:
    events = post_stream(http, "/v1/chat/completions", chat("x y", logprobs=True, top_logprobs=1))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [c["choices"][0]["logprobs"] is None for c in chunks] == [True, False, False, True]
    tokens = [c["choices"][0]["logprobs"]["content"][0]["token"] for c in chunks[1:3]]
    assert tokens == ["y", " x"]


def test_completion(client: openai.OpenAI) -> None:
    long_prompt = " ".join(f"w{i}" for i in range(20))
    result = client.completions.create(model=MODEL, prompt=long_prompt)
    assert result.id.startswith("cmpl-") and result.object == "text_completion"
    text, finish = expected_completion(long_prompt, max_tokens=16)
    assert (result.choices[0].text, result.choices[0].finish_reason) == (text, finish)
    assert finish == "length" and result.choices[0].logprobs is None
    assert result.usage and (result.usage.prompt_tokens, result.usage.completion_tokens) == (20, 16)
    short = client.completions.create(model=MODEL, prompt=[PROMPT], max_tokens=100, stop="fox")
    assert (short.choices[0].text, short.choices[0].finish_reason) == ("dog lazy the over jumps ", "stop")


def test_completion_echo_and_logprobs(client: openai.OpenAI) -> None:
    prompt = "Hello  there world "
    result = client.completions.create(model=MODEL, prompt=prompt, max_tokens=2, echo=True, logprobs=2)
    choice = result.choices[0]
    assert choice.text == prompt + "world there" and choice.finish_reason == "length"
    lp = choice.logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs and lp.text_offset
    assert lp.tokens == ["Hello", "  there", " world ", "world", " there"]
    assert "".join(lp.tokens) == choice.text
    assert lp.text_offset == [0, 5, 12, 19, 24]
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert all(v is not None and v < 0 for v in lp.token_logprobs[1:])
    for token, top in zip(lp.tokens[1:], lp.top_logprobs[1:]):
        assert top is not None and len(top) == 2 and max(top, key=lambda k: top[k]) == token
    scored = client.completions.create(model=MODEL, prompt="a b c", max_tokens=0, echo=True, logprobs=0)
    assert scored.choices[0].text == "a b c" and scored.usage and scored.usage.completion_tokens == 0
    assert scored.choices[0].logprobs and scored.choices[0].logprobs.top_logprobs == [None, {" b": pytest.approx(
        scored.choices[0].logprobs.token_logprobs[1])}, {" c": pytest.approx(
            scored.choices[0].logprobs.token_logprobs[2])}]  # type: ignore[index]


def test_completion_stream(client: openai.OpenAI, http: httpx.Client) -> None:
    stream = client.completions.create(model=MODEL, prompt="a b c", stream=True, echo=True,
                                       stream_options={"include_usage": True})
    with stream:
        chunks = list(stream)
    assert all(c.object == "text_completion" for c in chunks)
    assert [c.choices[0].text for c in chunks[:-1]] == ["a b c", "c", " b", " a", ""]
    assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-1].choices == []
    assert chunks[-1].usage and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 3)
    events = post_stream(http, "/v1/completions", {"model": MODEL, "prompt": "x y", "logprobs": 1})
    assert events[-1] == "[DONE]"
    chunks_raw = [json.loads(e) for e in events[:-1]]
    assert all("usage" not in c for c in chunks_raw)  # no include_usage: no usage at all
    offsets = [c["choices"][0]["logprobs"]["text_offset"] for c in chunks_raw[:2]]
    assert offsets == [[0], [1]]


def test_raw_stream_framing(http: httpx.Client) -> None:
    events = post_stream(http, "/v1/chat/completions",
                         chat("a b", stream_options={"include_usage": True}))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [c["usage"] for c in chunks[:-1]] == [None] * 4
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    plain = post_stream(http, "/v1/chat/completions", chat("a b"))
    assert plain[-1] == "[DONE]" and len(plain) == 5
    assert all("usage" not in json.loads(e) for e in plain[:-1])


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("body, status, param, code", [
    ({"messages": [{"role": "user", "content": "x"}]}, 400, "model", "missing_required_parameter"),
    ({"model": MODEL}, 400, "messages", "missing_required_parameter"),
    ({"model": MODEL, "messages": []}, 400, "messages", "empty_array"),
    ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role", "invalid_value"),
    ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, None, "model_not_found"),
    (chat("x", n=2), 400, "n", "invalid_value"),
    (chat("x", max_tokens="3"), 400, "max_tokens", "invalid_type"),
    (chat("x", max_tokens=0), 400, "max_tokens", "integer_below_min_value"),
    (chat("x", temperature=3), 400, "temperature", "invalid_value"),
    (chat("x", stream_options={"include_usage": True}), 400, "stream_options", "invalid_value"),
    (chat("x", top_logprobs=2), 400, "top_logprobs", "invalid_value"),
    (chat("x", logprobs=True, top_logprobs=21), 400, "top_logprobs", "integer_above_max_value"),
    (chat("x", stop=["a", "b", "c", "d", "e"]), 400, "stop", "invalid_value"),
])
def test_chat_errors(http: httpx.Client, body: dict[str, Any], status: int, param: str | None,
                     code: str) -> None:
    assert_error(http.post("/v1/chat/completions", json=body), status, param=param, code=code)


def test_other_errors(http: httpx.Client, client: openai.OpenAI) -> None:
    error = assert_error(http.post("/v1/chat/completions", content=b"{nope",
                                   headers={"content-type": "application/json"}), 400)
    assert "parse the JSON body" in error["message"]
    assert_error(http.post("/v1/completions", json=[1]), 400)
    assert_error(http.post("/v1/completions", json={"model": MODEL}), 400, param="prompt",
                 code="missing_required_parameter")
    assert_error(http.post("/v1/completions", json={"model": MODEL, "prompt": "x", "logprobs": 6}), 400,
                 param="logprobs", code="integer_above_max_value")
    assert_error(http.post("/v1/completions", json={"model": MODEL, "prompt": "x", "logprobs": True}), 400,
                 param="logprobs", code="invalid_type")
    assert_error(http.get("/v1/nothing-here"), 404)
    with pytest.raises(openai.NotFoundError) as info:
        client.completions.create(model="nope", prompt="x")
    assert info.value.status_code == 404 and info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], n=3)
    assert bad.value.param == "n" and bad.value.type == "invalid_request_error"


# --------------------------------------------------------------------------- faults, per request


def test_fault_status(http: httpx.Client, client: openai.OpenAI) -> None:
    assert_error(http.post("/v1/chat/completions", json=chat("x"), headers={"x-test-fault": "status:503"}),
                 503, type="server_error")
    assert_error(http.get("/v1/models", headers={"x-test-fault": "status:401"}), 401, code="invalid_api_key")
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"x-test-fault": "status:429"})
    assert info.value.code == "rate_limit_exceeded"
    assert_error(http.get("/v1/models", headers={"x-test-fault": "explode:1"}), 400, code="invalid_test_fault")
    assert_error(http.get("/v1/models", headers={"x-test-fault": "status:200"}), 400, code="invalid_test_fault")


def test_fault_slow(http: httpx.Client) -> None:
    started = time.monotonic()
    assert http.post("/v1/chat/completions", json=chat("a"), headers={"x-test-fault": "slow:300"}).status_code == 200
    assert time.monotonic() - started >= 0.3
    arrivals = []
    started = time.monotonic()
    with http.stream("POST", "/v1/chat/completions", json=chat("a b", stream=True),
                     headers={"x-test-fault": "slow:150"}) as response:
        for line in response.iter_lines():
            if line:
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 5  # role, 2 tokens, finish, [DONE]
    assert arrivals[0] >= 0.15 and all(b - a >= 0.1 for a, b in pairwise(arrivals))


def test_fault_break_stream(http: httpx.Client, client: openai.OpenAI) -> None:
    received = []
    body = chat(PROMPT, stream=True, stream_options={"include_usage": True})
    with pytest.raises(httpx.RemoteProtocolError), http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"x-test-fault": "break:2"}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                received.append(line)
    assert "[DONE]" not in "".join(received)
    chunks = [json.loads(line[len("data: "):]) for line in received]
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["", "dog", " lazy"]
    with pytest.raises(httpx.RemoteProtocolError):  # more than the tokens: cut before the finish chunk
        post_stream(http, "/v1/completions", {"model": MODEL, "prompt": "a"}, **{"x-test-fault": "break:9"})
    with pytest.raises(openai.APIConnectionError):
        stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}],
                                                stream=True, extra_headers={"x-test-fault": "break:1"})
        with stream:
            list(stream)


def test_fault_break_non_streaming(http: httpx.Client, client: openai.OpenAI) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/chat/completions", json=chat(PROMPT), headers={"x-test-fault": "break:0"})
    with pytest.raises(openai.APIConnectionError):
        client.completions.create(model=MODEL, prompt="x", extra_headers={"x-test-fault": "break:0"})
    assert http.post("/v1/chat/completions", json=chat("still alive")).status_code == 200


def test_recorded_requests(http: httpx.Client, client: openai.OpenAI) -> None:
    http.delete("/_test/requests")
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True,
                                   stream_options={"include_usage": True}).close()
    http.post("/v1/completions", content=b"not json", headers={"x-test-fault": "status:500"})
    recorded = http.get("/_test/requests").json()
    assert [(r["method"], r["path"]) for r in recorded] == [("POST", "/v1/chat/completions"),
                                                            ("POST", "/v1/completions")]
    assert recorded[0]["headers"]["authorization"] == "Bearer sk-test"
    assert recorded[0]["body"]["stream_options"] == {"include_usage": True}
    assert recorded[1]["body"] == "not json" and recorded[1]["headers"]["x-test-fault"] == "status:500"
    for i in range(55):
        http.get("/v1/models", headers={"x-request-number": str(i)})
    recorded = http.get("/_test/requests").json()
    assert len(recorded) == 50 and recorded[-1]["headers"]["x-request-number"] == "54"
    assert http.delete("/_test/requests").json() == {"deleted": 50}
    assert http.get("/_test/requests").json() == []


# --------------------------------------------------------------------------- faults and options, per engine


def test_engine_flags() -> None:
    with running_engine(model="m", api_key="engine-key", delay_ms=200, fail_after_chunks=1) as url, \
            httpx.Client(base_url=url, timeout=10) as http:
        assert_error(http.get("/v1/models"), 401, code="invalid_api_key")
        auth = {"authorization": "Bearer engine-key"}
        started = time.monotonic()
        with pytest.raises(httpx.RemoteProtocolError):
            post_stream(http, "/v1/chat/completions", {"model": "m", "messages": [
                {"role": "user", "content": "a b c"}]}, **auth)
        assert time.monotonic() - started >= 0.4  # before answering, then before the token chunk
        # the header overrides the flags; "none" clears them
        ok = http.post("/v1/chat/completions", json={"model": "m", "messages": [
            {"role": "user", "content": "a b"}]}, headers={**auth, "x-test-fault": "none"})
        assert ok.json()["choices"][0]["message"]["content"] == "b a"
        models = http.get("/v1/models", headers={**auth, "x-test-fault": "slow:0"})
        assert models.json()["data"][0]["id"] == "m"


def test_engine_status_flag_and_busy_port() -> None:
    process, url = start_engine(status_code=503)
    try:
        assert_error(httpx.get(f"{url}/v1/models", timeout=10), 503, type="server_error")
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(RuntimeError, match="address in use"):
            start_engine(port=port)
    finally:
        stop_engine(process)
    assert process.returncode is not None
