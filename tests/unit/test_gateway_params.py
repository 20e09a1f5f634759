"""The gateway's checks of what a call asks for (`gateway.params`, used by `proxy`): caps always
forwarded, n and best_of charged, parameter types, depth extensions, and the text the hook and the
prompt estimate read (every text field, normalised; bytes, not characters)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from releasehub.access.policy import TierApi
from releasehub.gateway.errors import GatewayError
from releasehub.gateway.lookup import Hosted, Target, TierTerms
from releasehub.gateway.proxy import check_depth, estimate_tokens, prompt_text, run_hook
from releasehub.gateway.ratelimit import Limits


def target(blocklist: tuple[str, ...] = (), **api: Any) -> Target:
    tier = TierApi(**api)
    hosted = Hosted("http://engine/v1", "m", None, 10.0, False, blocklist, None)
    terms = TierTerms(tier, Limits(tokens_per_minute=tier.tokens_per_minute), ("researcher",), ("researcher",))
    return Target(1, "lab/m", hosted, terms)


def refusal(endpoint: str, body: dict[str, Any], **api: Any) -> GatewayError | None:
    try:
        check_depth(endpoint, body, target(**api), "public")
    except GatewayError as exc:
        return exc
    return None


DEEP = {"logprobs": True, "top_logprobs": 5, "echo": True}


# -- caps and the charge


def caps(endpoint: str, body: dict[str, Any], estimate: int = 10, **api: Any) -> Any:
    from releasehub.gateway.params import token_caps

    return token_caps(endpoint, body, TierApi(**api), estimate)


def test_a_call_without_max_tokens_is_capped_at_the_tier() -> None:
    got = caps("chat", {}, max_tokens=100)
    assert (got.forward, got.max_tokens, got.charge(10)) == (100, 100, 110)
    # max_context: the cap leaves room for the prompt's estimate
    got = caps("completions", {}, estimate=300, max_tokens=512, max_context=400)
    assert got.forward == 100 and got.charge(300) == 400
    # tokens_per_minute bounds one call too (the whole charge must fit)
    assert caps("chat", {"n": 2}, estimate=10, tokens_per_minute=210).forward == 100
    # nothing bounds it: nothing forwarded, the default charged
    got = caps("chat", {})
    assert got.forward is None and got.max_tokens == 1024


def test_a_prompt_that_fills_the_context_is_refused() -> None:
    with pytest.raises(GatewayError) as full:
        caps("chat", {}, estimate=400, max_context=400)
    assert full.value.code == "context_length_exceeded"


def test_the_requests_own_cap_stands() -> None:
    got = caps("chat", {"max_tokens": 50}, max_tokens=100)
    assert got.forward is None and got.max_tokens == 50
    assert caps("chat", {"max_completion_tokens": 60}, max_tokens=100).forward is None
    # /v1/completions has no max_completion_tokens: the engine is sent it as max_tokens
    assert caps("completions", {"max_completion_tokens": 60}, max_tokens=100).forward == 60


@pytest.mark.parametrize("body", [{"max_completion_tokens": 150}, {"max_tokens": 50, "max_completion_tokens": 150},
                                  {"max_tokens": 150, "max_completion_tokens": 50}])
def test_max_completion_tokens_is_held_to_the_tier_like_max_tokens(body: dict[str, Any]) -> None:
    with pytest.raises(GatewayError) as over:
        caps("chat", body, max_tokens=100)
    assert over.value.code == "max_tokens_exceeded" and over.value.status == 400
    assert over.value.param == next(k for k, v in body.items() if v == 150)


def test_both_caps_count_against_the_context() -> None:
    with pytest.raises(GatewayError) as over:
        caps("chat", {"max_tokens": 10, "max_completion_tokens": 95}, estimate=10, max_context=100)
    assert over.value.code == "context_length_exceeded"


def test_n_and_best_of_multiply_the_charge() -> None:
    assert caps("chat", {"max_tokens": 100, "n": 3}).charge(10) == 310
    assert caps("completions", {"max_tokens": 100, "n": 2, "best_of": 5}).charge(10) == 510


@pytest.mark.parametrize("body, param", [
    ({"n": "2"}, "n"), ({"n": 2.0}, "n"), ({"n": True}, "n"), ({"n": 0}, "n"), ({"n": 17}, "n"),
    ({"best_of": 1.5}, "best_of"), ({"n": 3, "best_of": 2}, "best_of"), ({"max_tokens": "64"}, "max_tokens"),
    ({"max_completion_tokens": 1.0}, "max_completion_tokens"),
])
def test_counts_must_be_positive_integers(body: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as bad:
        caps("completions", body)
    assert (bad.value.status, bad.value.param) == (400, param)
    assert bad.value.code in ("invalid_type", "invalid_value")


# -- types and depth


@pytest.mark.parametrize("endpoint, body, param", [
    ("chat", {"logprobs": "true"}, "logprobs"),
    ("chat", {"logprobs": 1}, "logprobs"),
    ("chat", {"logprobs": True, "top_logprobs": "3"}, "top_logprobs"),
    ("chat", {"logprobs": True, "top_logprobs": 2.5}, "top_logprobs"),
    ("chat", {"logprobs": True, "top_logprobs": True}, "top_logprobs"),
    ("completions", {"logprobs": True}, "logprobs"),
    ("completions", {"logprobs": "2"}, "logprobs"),
    ("completions", {"logprobs": 2.0}, "logprobs"),
    ("completions", {"echo": "yes"}, "echo"),
    ("completions", {"prompt_logprobs": "1"}, "prompt_logprobs"),
    ("chat", {"prompt_logprobs": True}, "prompt_logprobs"),
])
def test_depth_parameters_are_typed_strictly(endpoint: str, body: dict[str, Any], param: str) -> None:
    error = refusal(endpoint, body, **DEEP)  # even on a tier that grants them all
    assert error is not None and error.status == 400 and error.param == param
    assert error.code == "invalid_type" and param in error.message
    assert set(error.body()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("endpoint, body, api, param", [
    ("chat", {"top_logprobs": 3}, {}, "logprobs"),                      # without logprobs: true
    ("chat", {"logprobs": True, "top_logprobs": 3}, {"logprobs": True, "top_logprobs": 2}, "top_logprobs"),
    ("completions", {"top_logprobs": 3}, {}, "logprobs"),
    ("completions", {"prompt_logprobs": 0}, {"logprobs": True, "top_logprobs": 5}, "prompt_logprobs"),
    ("chat", {"prompt_logprobs": 1}, {"logprobs": True, "top_logprobs": 5}, "prompt_logprobs"),
    ("completions", {"prompt_logprobs": 6}, DEEP, "prompt_logprobs"),
    ("completions", {"prompt_logprobs": -1}, DEEP, "prompt_logprobs"),
    ("completions", {"n_probs": 3}, {}, "n_probs"),
    ("chat", {"return_hidden_states": True}, DEEP, "return_hidden_states"),
    ("completions", {"return_logprob": True, "top_logprobs_num": 5}, DEEP, "return_logprob"),
    ("completions", {"decoder_input_details": True}, DEEP, "decoder_input_details"),
])
def test_depth_beyond_the_tier_is_refused(endpoint: str, body: dict[str, Any], api: dict[str, Any],
                                          param: str) -> None:
    error = refusal(endpoint, body, **api)
    assert error is not None and (error.status, error.code, error.param) == (403, "depth_not_allowed", param)


@pytest.mark.parametrize("endpoint, body", [
    ("completions", {"prompt_logprobs": 2, "echo": True, "logprobs": 1}),
    ("chat", {"logprobs": True, "top_logprobs": 5}),
    ("chat", {"logprobs": False, "top_logprobs": 0, "return_hidden_states": False}),
    ("chat", {"logit_bias": {"1": 5}, "logits_processors": None, "return_tokens_as_token_ids": True,
              "guided_json": {"type": "object"}}),
])
def test_what_the_tier_grants_passes(endpoint: str, body: dict[str, Any]) -> None:
    assert refusal(endpoint, body, **DEEP) is None


# -- the text and its estimate


def test_every_text_field_is_read() -> None:
    chat = {
        "messages": [
            {"role": "user", "name": "NAME-FIELD", "content": [{"type": "text", "text": "PART-TEXT"},
                                                               {"type": "image_url", "image_url": {"url": "x" * 99}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "TOOL-NAME", "arguments": '{"q": "ARGS"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "TOOL-RESULT"},
        ],
        "tools": [{"type": "function", "function": {"name": "search", "description": "DESCRIPTION",
                                                    "parameters": {"properties": {"PROPERTY-NAME": {}}}}}],
        "functions": [{"name": "LEGACY-FUNCTION", "description": "LEGACY-DESCRIPTION"}],
    }
    text = prompt_text("chat", chat)
    for word in ("NAME-FIELD", "PART-TEXT", "TOOL-NAME", "ARGS", "TOOL-RESULT", "DESCRIPTION", "PROPERTY-NAME",
                 "LEGACY-FUNCTION", "LEGACY-DESCRIPTION"):
        assert word in text, word
    assert "xxxx" not in text and "call_1" not in text  # media and ids are not words the model reads
    completion = prompt_text("completions", {"prompt": ["FIRST", "SECOND"], "suffix": "SUFFIX"})
    assert all(w in completion for w in ("FIRST", "SECOND", "SUFFIX"))


def test_the_estimate_counts_bytes_not_characters() -> None:
    assert estimate_tokens("a" * 800) == 200
    assert estimate_tokens("中" * 800) == 800    # three UTF-8 bytes each: one token each
    assert estimate_tokens("é" * 30 + "a" * 40) == 30  # 60 bytes / 3 + 40 / 4
    assert estimate_tokens("\ud800") == 1          # a lone surrogate (valid JSON) does not break it


def hooked(text: str, body: dict[str, Any] | None = None) -> str | None:
    t = target(blocklist=(r"forbidden\s+topic",))
    body = body or {"messages": [{"role": "user", "content": text}]}
    return asyncio.run(run_hook(None, t, prompt_text("chat", body)))  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["forbidden topic", "forbid\u200bden topic", "for\u00adbidden topic",
                                  "forbidden\u2060 topic", "\ufefff\u200corbidden\u200d topic",
                                  "ｆｏｒｂｉｄｄｅｎ　ｔｏｐｉｃ",
                                  "".join(chr(0xE0000 + ord(c)) for c in "forbidden topic")])
def test_the_blocklist_reads_normalised_text(text: str) -> None:
    assert hooked(text) is not None


def test_the_blocklist_reads_tools_and_names() -> None:
    tools = {"messages": [{"role": "user", "content": "hi"}],
             "tools": [{"type": "function", "function": {"name": "f", "description": "a forbidden topic"}}]}
    assert hooked("", tools) is not None
    named = {"messages": [{"role": "user", "name": "forbidden topic", "content": "hi"}]}
    assert hooked("", named) is not None
    assert hooked("the weather") is None


def test_token_id_prompts_are_refused_when_a_hook_reads_prompts() -> None:
    from releasehub.gateway.params import prompt_token_ids

    body = {"prompt": [[1, 2, 3], [4]]}
    assert prompt_token_ids("completions", body) == 4
    t = target(blocklist=("x",))
    assert asyncio.run(run_hook(None, t, "", 4)) is not None  # type: ignore[arg-type]
    assert asyncio.run(run_hook(None, target(), "", 4)) is None  # type: ignore[arg-type]


def test_an_answer_without_usage_is_estimated_for_every_choice() -> None:
    from releasehub.gateway.params import answer_estimate

    answer = {"choices": [{"index": i, "message": {"role": "assistant", "content": "abcd" * 5}} for i in range(2)]}
    assert answer_estimate(json.dumps(answer).encode(), 2) == 10
    assert answer_estimate(json.dumps(answer).encode(), 4) == 20  # best_of 4, two returned
    assert answer_estimate(b"not json", 1) == 0
