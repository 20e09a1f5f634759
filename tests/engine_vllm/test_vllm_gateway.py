"""The gateway in front of vLLM, through the unchanged `openai` client: what vLLM answers (its usage,
logprobs, echo, prompt_logprobs, n choices, streams with include_usage) reaches the client and the
metering as vLLM gave it, and what the tier refuses never reaches vLLM.

The model has random weights, so its text is noise: the tests assert shapes and counts, never
words. Calls that need an exact number of tokens pass vLLM's `ignore_eos` (a random model may
draw its end-of-sequence token at any step).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import openai
import pytest

from releasehub.gateway.params import estimate_tokens, prompt_text

from .hosting import Hosting, away_from_minute_edge, cli, daily_usage, requests_seen, usage_events

POLICY = """\
tiers:
  - name: public
    components: [documentation]
    api: {max_tokens: 12, tokens_per_minute: 100000}
  - name: researcher
    components: [documentation, weights]
    api: {max_tokens: 480, max_context: 512, tokens_per_minute: 100000, logprobs: true, top_logprobs: 5,
          echo: true}
  - name: metered
    components: [documentation]
    api: {max_tokens: 100, tokens_per_minute: 2000}
"""
EXACT = {"ignore_eos": True}  # vLLM's: generate max_tokens tokens, whatever the model draws


@pytest.fixture(scope="module")
def repo(hosting: Hosting) -> str:
    return hosting.repo(POLICY)


def test_chat_and_completions_are_settled_from_vllms_usage(hosting: Hosting, repo: str) -> None:
    fresh = hosting.repo(POLICY)  # its own counters
    c = hosting.client(hosting.key(fresh, "researcher"))
    assert [m.id for m in c.models.list()] == [fresh]
    chat = c.chat.completions.create(model=fresh, messages=[{"role": "user", "content": "Tell me about releases."}],
                                     max_tokens=6, extra_body=EXACT)
    assert chat.model == "tiny" and chat.object == "chat.completion"
    assert chat.choices[0].finish_reason == "length" and isinstance(chat.choices[0].message.content, str)
    assert chat.usage is not None and chat.usage.completion_tokens == 6 and chat.usage.prompt_tokens > 6
    done = c.completions.create(model=fresh, prompt="The quick brown fox", max_tokens=5, extra_body=EXACT)
    assert done.object == "text_completion" and done.usage is not None and done.usage.completion_tokens == 5

    events = usage_events(hosting.server, fresh, 2)
    for event, usage in zip(events, (chat.usage, done.usage)):
        assert event["outcome"] == "ok" and event["status"] == 200 and "usage_estimated" not in event
        assert (event["tokens_in"], event["tokens_out"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert daily_usage(hosting.server, fresh) == (2, chat.usage.prompt_tokens + done.usage.prompt_tokens, 11)
    report = json.loads(cli(hosting.server, "usage", "--repo", fresh, "--json", token=hosting.owner_token).stdout)
    assert report["requests"] == 2 and report["completion_tokens"] == 11


def test_streams_with_and_without_include_usage(hosting: Hosting) -> None:
    fresh = hosting.repo(POLICY)
    c = hosting.client(hosting.key(fresh, "researcher"))
    chunks = list(c.chat.completions.create(
        model=fresh, messages=[{"role": "user", "content": "a b c"}], max_tokens=7, stream=True,
        stream_options={"include_usage": True}, extra_body=EXACT))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 7
    assert all(ch.usage is None for ch in chunks[:-1]) and chunks[-2].choices[0].finish_reason == "length"
    # Without include_usage the client sees no usage chunk, though the gateway asked vLLM for one and
    # meters from it (not from the chunks it counted).
    plain = list(c.chat.completions.create(model=fresh, messages=[{"role": "user", "content": "a b"}],
                                           max_tokens=4, stream=True, extra_body=EXACT))
    assert plain and all(ch.usage is None for ch in plain) and all(ch.choices for ch in plain)
    text = list(c.completions.create(model=fresh, prompt="one two", max_tokens=3, stream=True,
                                     stream_options={"include_usage": True}, extra_body=EXACT))
    assert text[-1].usage is not None and text[-1].usage.completion_tokens == 3
    events = usage_events(hosting.server, fresh, 3)
    assert [e["tokens_out"] for e in events] == [7, 4, 3]
    assert events[0]["tokens_in"] == chunks[-1].usage.prompt_tokens
    assert events[2]["tokens_in"] == text[-1].usage.prompt_tokens
    assert all(e["outcome"] == "ok" and e["stream"] and "usage_estimated" not in e for e in events)


_ABOUT = re.compile(r"The prompt \(about (\d+) tokens\)")


def _gateway_count(c: openai.OpenAI, endpoint: str, ask: dict[str, Any]) -> int:
    """The gateway's own count of a prompt: a call whose max_tokens takes it past the tier's context
    of 512 is refused with the count in its message (before vLLM sees it): prompts of 33 tokens or more."""
    create = c.chat.completions.create if endpoint == "chat" else c.completions.create
    with pytest.raises(openai.BadRequestError) as refused:
        create(**ask, max_tokens=480)
    assert refused.value.code == "context_length_exceeded", refused.value.message
    found = _ABOUT.search(refused.value.message)
    assert found, refused.value.message
    return int(found.group(1))


PROMPTS: list[tuple[str, dict[str, Any]]] = [
    ("chat", {"messages": [{"role": "user", "content": "Releasing is not the same as being accessible, is it?"}]}),
    ("chat", {"messages": [{"role": "system", "content": "You answer in one word."},
                           {"role": "user", "content": "What is a gated release?"},
                           {"role": "assistant", "content": "Reviewed."},
                           {"role": "user", "content": "And a staged one, over months?"}]}),
    ("chat", {"messages": [{"role": "user", "content": [{"type": "text", "text": "Parts of a message"},
                                                         {"type": "text", "text": "are joined."}]}]}),
    ("chat", {"messages": [{"role": "user", "content": "模型发布不仅仅是一个权重文件。"}]}),
    ("completions", {"prompt": "A model release is more than a file of weights; whoever trains a model decides."}),
    ("completions", {"prompt": "Ünïcödé und Umlaute: größer, schöner, 数字 42."}),
]


@pytest.mark.parametrize("endpoint,ask", PROMPTS, ids=["chat", "chat-turns", "chat-parts", "chat-cjk",
                                                       "completion", "completion-unicode"])
def test_prompt_tokens_are_counted_with_the_repos_tokenizer(hosting: Hosting, repo: str, endpoint: str,
                                                            ask: dict[str, Any]) -> None:
    """The gateway counts the prompt with the repo's tokenizer.json and its chat template as vLLM does:
    the same count, to the token (tolerance 0). It can be exact here because the gateway and vLLM
    read the same tokenizer.json, and this template wraps each message in markers, so the messages'
    text encodes alike on its own and inside the template. Templates that rewrite the text would be
    off by a few tokens; the usage settles the charge either way. The byte estimate would be off:
    the multilingual prompts show it."""
    c = hosting.client(hosting.key(repo, "researcher"))
    ask = {"model": repo, **ask}
    create = c.chat.completions.create if endpoint == "chat" else c.completions.create
    answer = create(**ask, max_tokens=1)
    assert answer.usage is not None
    counted = _gateway_count(c, endpoint, ask)
    assert counted == answer.usage.prompt_tokens
    text = prompt_text(endpoint, ask)
    if not text.isascii():  # a byte a token for this small tokenizer; the estimate says three bytes a token
        assert estimate_tokens(text) < counted


def test_tier_depth_refused_below_the_tier_and_served_at_it(hosting: Hosting, repo: str) -> None:
    public = hosting.client(hosting.key(repo, "public"))
    researcher = hosting.client(hosting.key(repo, "researcher"))
    chat = {"model": repo, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}
    text = {"model": repo, "prompt": "the lazy dog", "max_tokens": 2}
    seen = requests_seen(hosting.engine)
    refusals = [
        (public.chat.completions.create, {**chat, "logprobs": True}, "logprobs"),
        (public.chat.completions.create, {**chat, "top_logprobs": 2}, "logprobs"),
        (public.completions.create, {**text, "logprobs": 2}, "logprobs"),
        (public.completions.create, {**text, "echo": True}, "echo"),
        (public.completions.create, {**text, "extra_body": {"prompt_logprobs": 1}}, "prompt_logprobs"),
        (public.chat.completions.create, {**chat, "extra_body": {"prompt_logprobs": 1}}, "prompt_logprobs"),
        (researcher.chat.completions.create, {**chat, "logprobs": True, "top_logprobs": 6}, "top_logprobs"),
        (researcher.completions.create, {**text, "logprobs": 6}, "logprobs"),
        (researcher.completions.create, {**text, "extra_body": {"prompt_logprobs": 6}}, "prompt_logprobs"),
        (researcher.completions.create, {**text, "extra_body": {"prompt_logprobs": -1}}, "prompt_logprobs"),
    ]
    for create, ask, param in refusals:
        with pytest.raises(openai.PermissionDeniedError) as denied:
            create(**ask)
        assert denied.value.code == "depth_not_allowed" and denied.value.body["param"] == param, ask
    assert requests_seen(hosting.engine) == seen  # none of them reached vLLM

    deep = researcher.chat.completions.create(**chat, logprobs=True, top_logprobs=3)
    content = deep.choices[0].logprobs.content
    assert len(content) == 2 and all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in content)
    echoed = researcher.completions.create(**text, echo=True, logprobs=2)
    choice = echoed.choices[0]
    assert choice.text.startswith("the lazy dog")
    prompt_tokens = echoed.usage.prompt_tokens
    assert len(choice.logprobs.tokens) == prompt_tokens + 2  # every prompt token, then the two generated
    assert choice.logprobs.token_logprobs[0] is None and all(len(t) <= 3 for t in choice.logprobs.top_logprobs[1:])
    scored = researcher.completions.create(**text, extra_body={"prompt_logprobs": 2})
    prompt_logprobs = scored.choices[0].model_extra["prompt_logprobs"]
    assert len(prompt_logprobs) == scored.usage.prompt_tokens and prompt_logprobs[0] is None
    assert all(1 <= len(candidates) <= 3 for candidates in prompt_logprobs[1:])  # the token and its top 2
    chat_scored = researcher.chat.completions.create(**chat, extra_body={"prompt_logprobs": 1})
    assert len(chat_scored.model_extra["prompt_logprobs"]) == chat_scored.usage.prompt_tokens


def test_max_tokens_is_capped_by_the_tier(hosting: Hosting, repo: str) -> None:
    """The public tier's max_tokens is 12: a call naming no cap gets 12 tokens from vLLM, not vLLM's
    default (the rest of the context for chat, 16 for completions); a larger cap never reaches it."""
    c = hosting.client(hosting.key(repo, "public"))
    chat = c.chat.completions.create(model=repo, messages=[{"role": "user", "content": "go on"}], extra_body=EXACT)
    assert chat.usage.completion_tokens == 12 and chat.choices[0].finish_reason == "length"
    done = c.completions.create(model=repo, prompt="go on", extra_body=EXACT)
    assert done.usage.completion_tokens == 12 and done.choices[0].finish_reason == "length"
    seen = requests_seen(hosting.engine)
    for name in ("max_tokens", "max_completion_tokens"):
        with pytest.raises(openai.BadRequestError) as capped:
            c.chat.completions.create(model=repo, messages=[{"role": "user", "content": "go on"}], **{name: 13})
        assert capped.value.code == "max_tokens_exceeded" and capped.value.param == name
    assert requests_seen(hosting.engine) == seen


def test_n_choices_are_charged_and_settled_from_vllms_usage(hosting: Hosting) -> None:
    """n=3 is charged up front as the prompt plus 3 x max_tokens (the remaining-tokens header of the
    call), and settled from vLLM's usage, which counts every choice: a call that stops early is
    charged its max_tokens, then only what vLLM says it generated."""
    fresh = hosting.repo(POLICY)
    key = hosting.key(fresh, "metered")
    c = hosting.client(key)
    messages = [{"role": "user", "content": "Name three release stages."}]
    away_from_minute_edge()
    raw = c.chat.completions.with_raw_response.create(model=fresh, messages=messages, n=3, max_tokens=5,
                                                      extra_body=EXACT)
    first = raw.parse()
    assert len(first.choices) == 3 and {ch.index for ch in first.choices} == {0, 1, 2}
    assert first.usage.completion_tokens == 15  # vLLM's usage: all three choices
    prompt = first.usage.prompt_tokens
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) == 2000 - (prompt + 3 * 5)
    # End-of-sequence made certain (logit_bias passes the gateway): charged 2 x 50, vLLM writes 1 a choice.
    eos = 2  # </s> in the tiny model's tokenizer
    raw = c.chat.completions.with_raw_response.create(model=fresh, messages=messages, n=2, max_tokens=50,
                                                      logit_bias={str(eos): 100})
    second = raw.parse()
    assert [ch.finish_reason for ch in second.choices] == ["stop", "stop"]
    generated = second.usage.completion_tokens
    assert generated <= 2
    used_first = prompt + 15
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) == 2000 - used_first - (prompt + 2 * 50)
    raw = c.chat.completions.with_raw_response.create(model=fresh, messages=messages, max_tokens=1, extra_body=EXACT)
    settled = used_first + prompt + generated  # the second call's charge came back down to its usage
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) == 2000 - settled - (prompt + 1)
    streamed = list(c.chat.completions.create(model=fresh, messages=messages, n=2, max_tokens=4, stream=True,
                                              stream_options={"include_usage": True}, extra_body=EXACT))
    assert streamed[-1].usage.completion_tokens == 8
    assert {ch.choices[0].index for ch in streamed if ch.choices} == {0, 1}
    events = usage_events(hosting.server, fresh, 4)
    assert [e["tokens_out"] for e in events] == [15, generated, 1, 8]


def test_a_client_hanging_up_aborts_the_generation_in_vllm(hosting: Hosting) -> None:
    """The client closes a stream of 440 tokens after its first one: the gateway closes vLLM's stream
    and vLLM aborts the request. vLLM 0.32 counts an aborted request nowhere in request_success_total
    (not even under finished_reason="abort"), so its metrics show the abort as: nothing running, the
    request never finished, and far fewer than 440 tokens generated. Each look at the metrics follows
    a one-token request sent to vLLM directly, so that they are fresh (updated at every engine step)."""
    repo = hosting.repo(POLICY)
    key = hosting.key(repo, "researcher")
    engine = hosting.engine
    generated = 'vllm:generation_tokens_total{engine="0",model_name="tiny"}'
    before = engine.metrics()
    finished_before = requests_seen(engine)
    body = {"model": repo, "messages": [{"role": "user", "content": "write at length"}], "max_tokens": 440,
            "stream": True, **EXACT}
    with (httpx.Client(base_url=hosting.server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
          http.stream("POST", "/v1/chat/completions", json=body) as answer):
        assert answer.status_code == 200
        for line in answer.iter_lines():
            # The first token with text (a token that ends inside a UTF-8 character comes as ""); hang up
            if line.startswith("data:") and re.search(r'"content":\s*"[^"]', line):
                break
    probes, deadline = 0, time.monotonic() + 60
    with httpx.Client(base_url=engine.url, timeout=60) as direct:
        while True:
            probe = direct.post("/v1/completions", json={"model": engine.model, "prompt": "x", "max_tokens": 1})
            assert probe.status_code == 200, probe.text
            probes += 1
            after = engine.metrics()
            running = sum(v for k, v in after.items() if k.startswith("vllm:num_requests_running"))
            if running == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert running == 0
    assert requests_seen(engine) - finished_before == probes, "the stream ran to its end in vLLM: not aborted"
    assert after[generated] - before[generated] < 440 + probes  # it stopped generating early
    [event] = usage_events(hosting.server, repo, 1)
    assert event["outcome"] == "cancelled" and event["status"] == 499
    assert 1 <= event["tokens_out"] < 440 and event["usage_estimated"] is True  # settled from the chunks sent


def test_the_kill_switch_stops_calls_before_vllm(hosting: Hosting, repo: str) -> None:
    c = hosting.client(hosting.key(repo, "researcher"))
    ask = {"model": repo, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    assert c.chat.completions.create(**ask).usage.completion_tokens == 1
    cli(hosting.server, "hosted", "disable", repo, "--reason", "incident 42", token=hosting.owner_token)
    try:
        seen = requests_seen(hosting.engine)
        with pytest.raises(openai.InternalServerError) as off:
            c.chat.completions.create(**ask)
        assert off.value.status_code == 503 and off.value.code == "model_disabled"
        assert "incident 42" in off.value.message
        with pytest.raises(openai.InternalServerError):
            list(c.completions.create(model=repo, prompt="hi", max_tokens=1, stream=True))
        assert requests_seen(hosting.engine) == seen
    finally:
        cli(hosting.server, "hosted", "enable", repo, token=hosting.owner_token)
    assert c.chat.completions.create(**ask).usage.completion_tokens == 1


def test_structured_output_passes_through(hosting: Hosting, repo: str) -> None:
    """Structured output is sampling, not depth: OpenAI's response_format with a JSON schema and vLLM's
    own `structured_outputs` pass, and even a random model answers in the schema."""
    c = hosting.client(hosting.key(repo, "researcher"))
    schema = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["open", "gated"]}},
              "required": ["answer"], "additionalProperties": False}
    ask = {"model": repo, "messages": [{"role": "user", "content": "open or gated?"}]}
    # The grammar lets the model write any whitespace between the tokens: a random model writes 20 to 55
    # tokens of it (40 tries); 300 leaves no chance of a cut answer.
    reply = c.chat.completions.create(**ask, max_tokens=300, response_format={
        "type": "json_schema", "json_schema": {"name": "choice", "schema": schema}})
    assert reply.choices[0].finish_reason == "stop"
    assert json.loads(reply.choices[0].message.content) in ({"answer": "open"}, {"answer": "gated"})
    chosen = c.chat.completions.create(**ask, max_tokens=10, extra_body={"structured_outputs": {"choice": ["open",
                                                                                                       "gated"]}})
    assert chosen.choices[0].message.content in ("open", "gated")


def test_a_named_tool_call_passes_through(hosting: Hosting, repo: str) -> None:
    """A call that names the tool to use (OpenAI's tool_choice): vLLM forces its arguments into the
    tool's schema (it refuses a named tool_choice unless started with a --tool-call-parser; the
    tests' vLLM has `pythonic`), and the answer reaches the client as a tool call; the gateway
    counts the tools offered in the prompt."""
    c = hosting.client(hosting.key(repo, "researcher"))
    tools = [{"type": "function", "function": {
        "name": "lookup_release", "description": "Find a model release by name.",
        "parameters": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6}},
                       "required": ["name"], "additionalProperties": False}}}]
    ask = {"model": repo, "messages": [{"role": "user", "content": "find the tiny release"}],
           "max_tokens": 300}  # room for the whitespace the grammar allows (see the structured output test)
    reply = c.chat.completions.create(**ask, tools=tools,
                                      tool_choice={"type": "function", "function": {"name": "lookup_release"}})
    [call] = reply.choices[0].message.tool_calls
    assert call.type == "function" and call.function.name == "lookup_release"
    # strict=False: the random model may write a control character inside the string, which vLLM's grammar lets through
    arguments = json.loads(call.function.arguments, strict=False)
    assert set(arguments) == {"name"} and isinstance(arguments["name"], str) and len(arguments["name"]) <= 6
    # This model's template does not show the tools to the model, so vLLM counts none of their tokens;
    # the gateway, which cannot know what a template renders, counts their text (a charge on the safe side).
    plain = c.chat.completions.create(**{**ask, "max_tokens": 1})
    assert reply.usage.prompt_tokens == plain.usage.prompt_tokens
    ask_tools = {"model": repo, "messages": ask["messages"], "tools": tools}
    assert _gateway_count(c, "chat", ask_tools) > plain.usage.prompt_tokens == _gateway_count(c, "chat", {
        "model": repo, "messages": ask["messages"]})
