"""What a call asks of the engine, checked before it is forwarded: parameter types, depth of access,
the token caps and the charge, and the text the releaser's hook and the prompt estimate read.

All of it is pure (no I/O) and cheap: a few dictionary reads per call, a walk over the messages,
and Unicode normalisation only for text that is not plain ASCII and only when a hook reads it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from releasehub.access.policy import TierApi

from .errors import GatewayError
from .lookup import Target

DEFAULT_MAX_TOKENS = 1024  # charged when a request sets no max_tokens and no limit of the tier bounds it
MAX_CHOICES = 16           # the largest `n` and `best_of`
MAX_TOP_LOGPROBS = 20      # as OpenAI's chat API

# Invisible characters that split a word without changing what the model reads: removed before the
# hook's patterns and moderation see the text. Unicode tag characters (U+E0020-U+E007E, invisible
# "ASCII smuggling") become the ASCII they mirror.
_INVISIBLE: dict[int, int | None] = {cp: None for cp in (0x00AD, 0x180E, 0x200B, 0x200C, 0x200D, 0x2060,
                                                         0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF,
                                                         0xE0001, 0xE007F)}
_INVISIBLE.update({0xE0000 + c: c for c in range(0x20, 0x7F)})

# Request fields of engines' own (vLLM, SGLang, llama.cpp, TGI) that look like they reveal the
# model's probabilities or internals, beyond those checked by name below: refused unless absent or false.
_DEPTH_NAME = re.compile(r"logprob|probs|hidden|logit|details")
_NOT_DEPTH = frozenset({"logprobs", "top_logprobs", "prompt_logprobs", "n_probs", "logit_bias",
                        "logits_processors"})
# Message fields that carry no text the model reads as words (ids, roles, media).
_NOT_TEXT = frozenset({"role", "type", "id", "tool_call_id", "image_url", "input_audio", "audio_url",
                       "video_url", "file", "detail", "format", "cache_control"})
# Chat fields besides the messages whose text reaches the model (through the chat template).
_CHAT_EXTRA_TEXT = ("tools", "functions", "documents", "chat_template_kwargs")


# ---------------------------------------------------------------------------------------------
# Types


def invalid_type(name: str, expected: str, value: Any) -> GatewayError:
    return GatewayError(400, f"Invalid type for '{name}': expected {expected}, but got {type(value).__name__}.",
                        param=name, code="invalid_type")


def get_int(body: Mapping[str, Any], name: str, low: int, high: int | None = None) -> int | None:
    """`body[name]` as an integer in [low, high] (bools, floats and strings refused), or None if absent."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(name, "an integer", value)
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"from {low} to {high}"
        raise GatewayError(400, f"Invalid value for '{name}': expected an integer {bounds}, but got {value}.",
                           param=name, code="invalid_value")
    return value


def get_bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid_type(name, "a boolean", value)
    return value


def choices(body: Mapping[str, Any]) -> int:
    """How many completions the engine generates for this call: `n`, or `best_of` when larger."""
    n = get_int(body, "n", 1, MAX_CHOICES) or 1
    best_of = get_int(body, "best_of", 1, MAX_CHOICES)
    if best_of is not None and best_of < n:
        raise GatewayError(400, f"best_of ({best_of}) must be at least n ({n}).", param="best_of",
                           code="invalid_value")
    return max(n, best_of or 1)


# ---------------------------------------------------------------------------------------------
# Depth of access


def _who_allows(tiers: tuple[str, ...], what: str) -> str:
    if tiers:
        names = ", ".join(repr(t) for t in tiers)
        return f" The {names} tier{'s' if len(tiers) > 1 else ''} allow{'' if len(tiers) > 1 else 's'} {what}."
    return f" No tier of this model allows {what}."


def _depth_error(message: str, param: str) -> GatewayError:
    return GatewayError(403, message, type="permission_error", code="depth_not_allowed", param=param)


@dataclass(slots=True)
class Depth:
    """What the tier grants, checked with the tiers a refusal names."""

    target: Target
    tier: str

    def logprobs(self, param: str) -> None:
        if not self.target.api.logprobs:
            raise _depth_error(f"Your tier {self.tier!r} gives sampled outputs only, not logprobs."
                               + _who_allows(self.target.terms.tiers_logprobs, "logprobs"), param)

    def top(self, value: int, param: str) -> None:
        if value > self.target.api.top_logprobs:
            raise _depth_error(f"Your tier {self.tier!r} allows at most {self.target.api.top_logprobs} top "
                               f"logprobs, not {value}.", param)

    def echo(self, param: str) -> None:
        if not self.target.api.echo:
            raise _depth_error(f"Your tier {self.tier!r} does not allow echo (prompt logprobs)."
                               + _who_allows(self.target.terms.tiers_echo, "echo"), param)


def check_depth(endpoint: str, body: Mapping[str, Any], target: Target, tier: str) -> None:
    """Logprobs, top logprobs, echo and prompt logprobs, typed strictly and within the tier."""
    depth = Depth(target, tier)
    if endpoint == "chat":
        wants, top_name = get_bool(body, "logprobs"), "top_logprobs"
        top = get_int(body, "top_logprobs", 0, MAX_TOP_LOGPROBS) or 0
    else:
        logprobs = get_int(body, "logprobs", 0)
        extra = get_int(body, "top_logprobs", 0)
        wants, top_name = logprobs is not None or bool(extra), "logprobs"
        top = max(logprobs or 0, extra or 0)
    if wants or top:
        depth.logprobs("logprobs")
        depth.top(top, top_name)
    n_probs = get_int(body, "n_probs", 0)  # llama.cpp's top candidates per token
    if n_probs:
        depth.logprobs("n_probs")
        depth.top(n_probs, "n_probs")
    if get_bool(body, "echo") and endpoint == "completions":
        depth.echo("echo")
    prompt_logprobs = body.get("prompt_logprobs")  # vLLM's: top candidates of every prompt token
    if prompt_logprobs is not None:
        if isinstance(prompt_logprobs, bool) or not isinstance(prompt_logprobs, int):
            raise invalid_type("prompt_logprobs", "an integer", prompt_logprobs)
        depth.echo("prompt_logprobs")
        if prompt_logprobs < 0:
            raise _depth_error(f"prompt_logprobs={prompt_logprobs} (the whole vocabulary) is beyond any tier; "
                               f"your tier {tier!r} allows at most {target.api.top_logprobs}.", "prompt_logprobs")
        depth.top(prompt_logprobs, "prompt_logprobs")
    _check_unknown_depth(body, depth.tier)


def _check_unknown_depth(body: Mapping[str, Any], tier: str) -> None:
    if not _DEPTH_NAME.search(" ".join(body)):  # one search over all the names: most calls stop here
        return
    for name, value in body.items():
        if value is None or value is False or name in _NOT_DEPTH or not _DEPTH_NAME.search(name):
            continue
        raise _depth_error(f"The gateway does not pass on `{name}` (it may reveal the model's probabilities or "
                           f"internals, which no tier grants beyond logprobs, top_logprobs and echo; "
                           f"your tier is {tier!r}).", name)


# ---------------------------------------------------------------------------------------------
# Token caps and the charge


class Caps(NamedTuple):
    """The completion tokens a call may use, per choice; `forward`: the max_tokens added to the
    forwarded body when the request named none (None: the request's own cap stands, or nothing bounds it)."""

    max_tokens: int
    choices: int
    forward: int | None

    def charge(self, prompt_estimate: int) -> int:
        """Tokens reserved before the call: the prompt once, and max_tokens for every choice generated."""
        return prompt_estimate + self.choices * self.max_tokens


def _context_error(estimate: int, max_tokens: int, api: TierApi, prompt_param: str) -> GatewayError:
    return GatewayError(400, f"The prompt (about {estimate} tokens) plus max_tokens ({max_tokens}) is "
                             f"more than your tier's context of {api.max_context} tokens.",
                        param=prompt_param, code="context_length_exceeded")


def token_caps(endpoint: str, body: Mapping[str, Any], api: TierApi, estimate: int) -> Caps:
    """Validate max_tokens and max_completion_tokens (both, when both are sent) against the tier,
    and the cap to forward when the request names none."""
    prompt_param = "messages" if endpoint == "chat" else "prompt"
    n = choices(body)
    asked = {name: value for name in ("max_tokens", "max_completion_tokens")
             if (value := get_int(body, name, 1)) is not None}
    for name, value in asked.items():
        if api.max_tokens is not None and value > api.max_tokens:
            raise GatewayError(400, f"{name} is {value}, more than your tier's {api.max_tokens}.",
                               param=name, code="max_tokens_exceeded")
    if asked:
        most = max(asked.values())
        if api.max_context is not None and estimate + most > api.max_context:
            raise _context_error(estimate, most, api, prompt_param)
        named = "max_tokens" in asked or (endpoint == "chat" and "max_completion_tokens" in asked)
        return Caps(most, n, None if named else most)
    bounds = [b for b in (api.max_tokens,
                          None if api.max_context is None else api.max_context - estimate,
                          None if api.tokens_per_minute is None else (api.tokens_per_minute - estimate) // n)
              if b is not None]
    if not bounds:
        return Caps(DEFAULT_MAX_TOKENS, n, None)
    cap = min(bounds)
    if cap < 1 and api.max_context is not None and estimate >= api.max_context:
        raise _context_error(estimate, 1, api, prompt_param)
    return Caps(max(cap, 1), n, max(cap, 1))


# ---------------------------------------------------------------------------------------------
# The prompt's text and its estimate


def _strings(value: Any, *, skip: frozenset[str] = frozenset(), keys: bool = False) -> Iterator[str]:
    """Every string inside a JSON value (dict keys too when `keys`), depth first, without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            for key, inner in item.items():
                if key in skip:
                    continue
                if keys and isinstance(key, str):
                    yield key
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _message_strings(messages: Any) -> list[str]:
    if not isinstance(messages, list):
        return list(_strings(messages, skip=_NOT_TEXT))
    parts: list[str] = []
    for message in messages:
        if not isinstance(message, Mapping):
            parts.extend(_strings(message))
            continue
        for key, value in message.items():  # most are {"role": ..., "content": "..."}: no walk needed
            if isinstance(value, str):
                if key not in _NOT_TEXT:
                    parts.append(value)
            elif value is not None and key not in _NOT_TEXT:
                parts.extend(_strings(value, skip=_NOT_TEXT))
    return parts


def prompt_text(endpoint: str, body: Mapping[str, Any]) -> str:
    """Every text the model reads: the messages' content (text parts), names, tool calls and their
    arguments, the tools and functions offered (names, descriptions, parameter schemas), a chat
    template and its documents; or the prompt (text items) and suffix of a completion."""
    if endpoint == "chat":
        parts = _message_strings(body.get("messages"))
        for name in _CHAT_EXTRA_TEXT:
            if body.get(name):
                parts.extend(_strings(body[name], keys=True))
        if isinstance(body.get("chat_template"), str):
            parts.append(body["chat_template"])
    else:
        prompt = body.get("prompt")
        parts = [p for p in (prompt if isinstance(prompt, list) else [prompt]) if isinstance(p, str)]
        if isinstance(body.get("suffix"), str):
            parts.append(body["suffix"])
    return "\n".join(parts)


def prompt_token_ids(endpoint: str, body: Mapping[str, Any]) -> int:
    """Prompt tokens given as token ids (a completion's `prompt` as integers, or lists of them)."""
    prompt = body.get("prompt") if endpoint == "completions" else None
    if not isinstance(prompt, list):
        return 0
    count = 0
    for item in prompt:
        if isinstance(item, int):
            count += 1
        elif isinstance(item, list):
            count += sum(1 for t in item if isinstance(t, int))
    return count


def estimate_tokens(text: str) -> int:
    """A conservative count of the tokens in `text`, from its UTF-8 bytes: four ASCII characters a
    token (English under BPE tokenizers), three bytes of anything else a token (one a CJK character,
    where 4 characters a token would count 800 of them as 200). The engine's usage settles it."""
    if text.isascii():
        return max(1, -(-len(text) // 4))
    ascii_chars = len(text.encode("ascii", "ignore"))
    other_bytes = len(text.encode("utf-8", "surrogatepass")) - ascii_chars
    return max(1, -(-(3 * ascii_chars + 4 * other_bytes) // 12))


def normalise(text: str) -> str:
    """The text as the hook's patterns and the moderation service read it: NFKC (full-width and other
    compatibility forms folded), without zero-width characters and soft hyphens."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE)


def answer_estimate(raw: bytes, generated: int) -> int:
    """Completion tokens of an answer that reports no usage, estimated from its choices' text; when
    the engine generated more choices than it returned (best_of), scaled up to all of them."""
    try:
        answer = json.loads(raw)
    except ValueError:
        return 0
    found = answer.get("choices") if isinstance(answer, Mapping) else None
    if not isinstance(found, list) or not found:
        return 0
    texts = [s for choice in found if isinstance(choice, Mapping)
             for s in _strings([choice.get("message"), choice.get("text")], skip=_NOT_TEXT)]
    tokens = sum(estimate_tokens(t) for t in texts if t)
    return -(-tokens * max(generated, len(found)) // len(found))
