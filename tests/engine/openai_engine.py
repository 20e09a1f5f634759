"""A small, deterministic inference engine that speaks the OpenAI HTTP API, for the gateway's tests.

There is no model: the completion is the prompt's words in reverse order, one word per token,
so a test can predict every byte (see `expected_completion`). Everything else follows the
OpenAI API: response and chunk shapes, SSE framing with `data: [DONE]`, `stream_options.
include_usage`, logprobs, `stop`, `echo`, and errors as `{"error": {message, type, param, code}}`.

Faults for the gateway's tests, for every request (CLI flags) or for one request (the
`x-test-fault` header, comma-separated items; the header wins; `none` clears the flags):

    slow:<ms>     sleep <ms> before answering and between stream chunks   (--delay-ms)
    break:<n>     stream: drop the connection after <n> content chunks, without the finish
                  chunk, usage or [DONE]; non-streaming: send half the body, then drop
                                                                          (--fail-after-chunks)
    status:<code> answer <code> with an OpenAI-shaped error                (--status-code)

Faults apply to /v1/* only. GET /_test/requests lists the last 50 requests to /v1/* (method,
path, all headers, JSON body); DELETE /_test/requests clears the list.

Run it from the repository root:

    .venv/bin/python tests/engine/openai_engine.py --port 8123 [--model NAME ...] [--delay-ms N]
        [--fail-after-chunks N] [--status-code C] [--api-key KEY] [--host 127.0.0.1]

or, from the tests, `start_engine(...)` / `stop_engine(...)` / `with running_engine(...)`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

DEFAULT_MODEL = "echo-model"
FAULT_HEADER = "x-test-fault"
CONFIG_ENV = "OPENAI_ENGINE_CONFIG"
INSTANCE_HEADER = "x-test-engine-instance"  # on every response: which engine process answered
RECORDED_REQUESTS = 50
COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # as OpenAI's legacy /v1/completions
MAX_CHAT_TOP_LOGPROBS = 20
MAX_COMPLETION_LOGPROBS = 5
CHAT_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}

# Other candidates listed in top_logprobs, after the chosen token (which is always the likeliest).
_ALTERNATIVES = (
    "the", "a", "and", "of", "to", "in", "is", "it", "that", "for", "on",
    "with", "as", "was", "at", "by", "this", "be", "or", "an", "not",
)
_TOKEN_RE = re.compile(r"\s*\S+")


# --------------------------------------------------------------------------- the "model"


def count_tokens(text: str) -> int:
    """Tokens in a prompt: whitespace-separated words."""
    return len(text.split())


def prompt_tokens_of(text: str) -> list[str]:
    """The prompt as tokens whose concatenation is the prompt: each word with the whitespace before it
    (trailing whitespace joins the last word; a prompt of only whitespace has no tokens)."""
    tokens = _TOKEN_RE.findall(text)
    rest = text[sum(len(t) for t in tokens):]
    if rest and tokens:
        tokens[-1] += rest
    return tokens


def generate(prompt: str, max_tokens: int | None, stop: Sequence[str] = ()) -> tuple[list[str], str]:
    """The completion tokens and finish_reason for a prompt.

    The words of the prompt in reverse order, the first bare and the others with one space before
    them; at most `max_tokens` of them ("length" if words were left over, else "stop"). The text is
    then cut before the first occurrence of any `stop` string ("stop"); the last token may be cut.
    """
    words = prompt.split()[::-1]
    kept = words if max_tokens is None else words[:max_tokens]
    tokens = [word if i == 0 else " " + word for i, word in enumerate(kept)]
    finish = "length" if len(kept) < len(words) else "stop"
    text = "".join(tokens)
    cuts = [text.find(s) for s in stop if s and s in text]
    if cuts:
        cut, pos, shortened = min(cuts), 0, []
        for token in tokens:
            if pos + len(token) <= cut:
                shortened.append(token)
                pos += len(token)
                continue
            if cut > pos:
                shortened.append(token[: cut - pos])
            break
        tokens, finish = shortened, "stop"
    return tokens, finish


def expected_completion(prompt: str, max_tokens: int | None = None,
                        stop: str | Sequence[str] | None = None) -> tuple[str, str]:
    """(text, finish_reason) the engine answers for this prompt: for chat, the prompt is the content
    of the last user message; /v1/completions defaults max_tokens to 16, chat to no limit."""
    stops = [stop] if isinstance(stop, str) else list(stop or ())
    tokens, finish = generate(prompt, max_tokens, stops)
    return "".join(tokens), finish


def token_logprob(token: str) -> float:
    """A deterministic, plausible log probability in [-0.94, -0.05]."""
    return -round(0.05 + (zlib.crc32(token.encode("utf-8")) % 90) / 100, 4)


def top_candidates(token: str, n: int) -> list[tuple[str, float]]:
    """The n likeliest tokens at this position: the chosen token first, then alternatives far below it."""
    logprob = token_logprob(token)
    lead = token[: len(token) - len(token.lstrip())]
    out = [(token, logprob)]
    for word in _ALTERNATIVES:
        if len(out) >= n:
            break
        if lead + word != token:
            out.append((lead + word, round(logprob - 3.0 * len(out), 4)))
    return out[:n]


def chat_logprob_entry(token: str, top: int) -> dict[str, Any]:
    return {
        "token": token,
        "logprob": token_logprob(token),
        "bytes": list(token.encode("utf-8")),
        "top_logprobs": [
            {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))} for t, lp in top_candidates(token, top)
        ],
    }


def completion_logprobs(tokens: list[str], offset: int, top: int, first_is_unscored: bool) -> dict[str, Any]:
    """The legacy logprobs object for tokens starting at character `offset` of the choice's text.
    The very first token of an echoed prompt has no logprob (null), as OpenAI answers."""
    token_logprobs: list[float | None] = []
    tops: list[dict[str, float] | None] = []
    offsets: list[int] = []
    for i, token in enumerate(tokens):
        offsets.append(offset)
        offset += len(token)
        if i == 0 and first_is_unscored:
            token_logprobs.append(None)
            tops.append(None)
        else:
            token_logprobs.append(token_logprob(token))
            tops.append(dict(top_candidates(token, max(top, 1))))
    return {"tokens": list(tokens), "token_logprobs": token_logprobs, "top_logprobs": tops, "text_offset": offsets}


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Faults:
    delay_ms: int = 0
    break_after: int | None = None
    status: int | None = None


@dataclass(frozen=True)
class EngineConfig:
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    faults: Faults = Faults()
    api_key: str | None = None
    created: int = 0
    instance: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> EngineConfig:
        data = json.loads(text)
        return cls(models=tuple(data["models"]), faults=Faults(**data["faults"]),
                   api_key=data["api_key"], created=data["created"], instance=data["instance"])


def parse_faults(header: str, base: Faults) -> Faults:
    """Apply the items of an x-test-fault header to the engine's default faults."""
    faults = base
    for item in (part.strip() for part in header.split(",")):
        if not item:
            continue
        if item == "none":
            faults = Faults()
            continue
        kind, _, arg = item.partition(":")
        if kind not in ("slow", "break", "status") or not arg.isdigit():
            raise APIError(400, f"Malformed {FAULT_HEADER} item {item!r}: expected slow:<ms>, break:<n>, "
                                "status:<code> or none.", code="invalid_test_fault")
        number = int(arg)
        if kind == "slow":
            faults = replace(faults, delay_ms=number)
        elif kind == "break":
            faults = replace(faults, break_after=number)
        else:
            if not 400 <= number <= 599:
                raise APIError(400, f"{FAULT_HEADER} status must be 400-599, not {number}.",
                               code="invalid_test_fault")
            faults = replace(faults, status=number)
    return faults


# --------------------------------------------------------------------------- errors


class APIError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        if type is None:
            type = "server_error" if status >= 500 else "requests" if status == 429 else "invalid_request_error"
        self.type = type

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def injected_error(status: int) -> APIError:
    code = {401: "invalid_api_key", 404: "not_found", 429: "rate_limit_exceeded"}.get(status)
    return APIError(status, f"Injected fault: status {status}.", code=code)


class _StreamBroken(Exception):
    """Raised inside a response to drop the connection mid-body (the `break` fault)."""


def _missing(name: str) -> APIError:
    return APIError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")


def _invalid_type(name: str, expected: str, value: Any) -> APIError:
    return APIError(400, f"Invalid type for '{name}': expected {expected}, but got {type(value).__name__}.",
                    param=name, code="invalid_type")


def _get_int(body: dict[str, Any], name: str, low: int, high: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid_type(name, "an integer", value)
    if value < low:
        raise APIError(400, f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
                            f"but got {value} instead.", param=name, code="integer_below_min_value")
    if high is not None and value > high:
        raise APIError(400, f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, "
                            f"but got {value} instead.", param=name, code="integer_above_max_value")
    return value


def _get_bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid_type(name, "a boolean", value)
    return value


def _common_params(body: dict[str, Any], config: EngineConfig) -> dict[str, Any]:
    """model, temperature, n, stop, stream, stream_options, checked as OpenAI does."""
    model = body.get("model")
    if model is None:
        raise _missing("model")
    if not isinstance(model, str):
        raise _invalid_type("model", "a string", model)
    if model not in config.models:
        raise APIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                       code="model_not_found")
    temperature = body.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise _invalid_type("temperature", "a number", temperature)
        if not 0 <= temperature <= 2:
            raise APIError(400, f"Invalid 'temperature': expected a value between 0 and 2, but got {temperature}.",
                           param="temperature", code="invalid_value")
    n = _get_int(body, "n", 1, None)
    if n not in (None, 1):
        raise APIError(400, "This engine only supports n=1.", param="n", code="invalid_value")
    stop = body.get("stop")
    if stop is None:
        stops: list[str] = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop):
        stops = stop
    else:
        raise APIError(400, "Invalid 'stop': expected a string or an array of at most 4 strings.",
                       param="stop", code="invalid_value")
    stream = _get_bool(body, "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise APIError(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                           param="stream_options", code="invalid_value")
        if not isinstance(options, dict):
            raise _invalid_type("stream_options", "an object", options)
        include_usage = _get_bool(options, "include_usage")
    return {"model": model, "stop": stops, "stream": stream, "include_usage": include_usage}


def _content_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or "type" not in part:
                raise APIError(400, f"Invalid '{where}': each content part must be an object with a 'type'.",
                               param=where, code="invalid_value")
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise _missing(f"{where}.text")
                parts.append(part["text"])
        return " ".join(parts)
    raise _invalid_type(where, "a string or an array of content parts", content)


# --------------------------------------------------------------------------- the app


class _InstanceHeader:
    """Pure ASGI middleware (a BaseHTTPMiddleware would finish a stream cleanly that `break` must cut)."""

    def __init__(self, app: Any, instance: str) -> None:
        self.app, self.header = app, (INSTANCE_HEADER.encode(), instance.encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_header)


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def create_app(config: EngineConfig | None = None) -> FastAPI:
    if config is None:
        config = EngineConfig.from_json(os.environ[CONFIG_ENV]) if CONFIG_ENV in os.environ else EngineConfig()
    if not config.created:
        config = replace(config, created=int(time.time()))
    recorded: deque[dict[str, Any]] = deque(maxlen=RECORDED_REQUESTS)

    app = FastAPI(title="openai-engine (tests)", docs_url=None, redoc_url=None, openapi_url=None)

    app.add_middleware(_InstanceHeader, instance=config.instance)

    class TruncatedResponse(Response):
        """Headers announce the whole body; half of it is sent, then the connection drops."""

        async def __call__(self, scope, receive, send) -> None:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})
            raise _StreamBroken("x-test-fault break: response cut")

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = f"Invalid URL ({request.method} {request.url.path})" if exc.status_code in (404, 405) \
            else str(exc.detail)
        return JSONResponse(APIError(exc.status_code, message).body(), status_code=exc.status_code)

    async def prepare(request: Request, with_body: bool) -> tuple[dict[str, Any], Faults]:
        """Record the request, apply delay/status faults, check the API key, parse the JSON body."""
        raw = await request.body() if with_body else b""
        try:
            body: Any = json.loads(raw) if raw else None
            parsed = True
        except ValueError:
            body, parsed = raw.decode("utf-8", "replace"), False
        recorded.append({"method": request.method, "path": request.url.path,
                         "headers": {k.lower(): v for k, v in request.headers.items()}, "body": body})
        header = request.headers.get(FAULT_HEADER)
        faults = parse_faults(header, config.faults) if header else config.faults
        if faults.delay_ms:
            await asyncio.sleep(faults.delay_ms / 1000)
        if faults.status:
            raise injected_error(faults.status)
        if config.api_key is not None and request.headers.get("authorization") != f"Bearer {config.api_key}":
            raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
        if with_body and (not parsed or not isinstance(body, dict)):
            raise APIError(400, "We could not parse the JSON body of your request. (HINT: This likely means "
                                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                                "payload, but what was sent was not valid JSON.)")
        return body or {}, faults

    def respond(payload: dict[str, Any], faults: Faults) -> Response:
        if faults.break_after is not None:
            return TruncatedResponse(JSONResponse(payload).body, media_type="application/json")
        return JSONResponse(payload)

    def stream(chunks: list[bytes], content_chunks: range, faults: Faults) -> StreamingResponse:
        """Send the SSE chunks; `content_chunks` are the indexes of the ones that carry generated tokens."""

        async def body() -> AsyncIterator[bytes]:
            sent_content = 0
            for i, chunk in enumerate(chunks):
                if faults.break_after is not None and (
                        sent_content >= faults.break_after or i >= content_chunks.stop):
                    raise _StreamBroken("x-test-fault break: stream cut")
                if i and faults.delay_ms:
                    await asyncio.sleep(faults.delay_ms / 1000)
                yield chunk
                sent_content += i in content_chunks

        return StreamingResponse(body(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})

    def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}

    def model_object(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": config.created, "owned_by": "engine"}

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        await prepare(request, with_body=False)
        return JSONResponse({"object": "list", "data": [model_object(m) for m in config.models]})

    @app.get("/v1/models/{model:path}")
    async def get_model(model: str, request: Request) -> Response:
        await prepare(request, with_body=False)
        if model not in config.models:
            raise APIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                           param="model", code="model_not_found")
        return JSONResponse(model_object(model))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body, faults = await prepare(request, with_body=True)
        common = _common_params(body, config)
        messages = body.get("messages")
        if messages is None:
            raise _missing("messages")
        if not isinstance(messages, list):
            raise _invalid_type("messages", "an array", messages)
        if not messages:
            raise APIError(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                                "but got an empty array instead.", param="messages", code="empty_array")
        texts = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise _invalid_type(f"messages[{i}]", "an object", message)
            if message.get("role") not in CHAT_ROLES:
                raise APIError(400, f"Invalid value: {message.get('role')!r}. Supported values are: "
                                    + ", ".join(f"'{r}'" for r in sorted(CHAT_ROLES)) + ".",
                               param=f"messages[{i}].role", code="invalid_value")
            texts.append((message["role"], _content_text(message.get("content"), f"messages[{i}].content")))
        user_texts = [text for role, text in texts if role == "user"]
        prompt = user_texts[-1] if user_texts else texts[-1][1]
        max_tokens = _get_int(body, "max_completion_tokens", 1, None)
        if max_tokens is None:
            max_tokens = _get_int(body, "max_tokens", 1, None)
        want_logprobs = _get_bool(body, "logprobs")
        top = _get_int(body, "top_logprobs", 0, MAX_CHAT_TOP_LOGPROBS)
        if top is not None and not want_logprobs:
            raise APIError(400, "Invalid value for 'top_logprobs': 'logprobs' must be set to true when "
                                "'top_logprobs' is used.", param="top_logprobs", code="invalid_value")
        tokens, finish = generate(prompt, max_tokens, common["stop"])
        counts = usage(sum(count_tokens(text) for _, text in texts), len(tokens))
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": common["model"]}

        def logprobs(toks: list[str]) -> dict[str, Any] | None:
            if not want_logprobs:
                return None
            return {"content": [chat_logprob_entry(t, top or 0) for t in toks], "refusal": None}

        if not common["stream"]:
            return respond({
                **base,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(tokens),
                                                     "refusal": None},
                             "logprobs": logprobs(tokens), "finish_reason": finish}],
                "usage": counts,
            }, faults)

        chunk = {**base, "object": "chat.completion.chunk"}
        # with include_usage, OpenAI sends "usage": null in every chunk but the last
        tail = {"usage": None} if common["include_usage"] else {}

        def choice(delta: dict[str, Any], lp: dict[str, Any] | None = None, reason: str | None = None) -> bytes:
            return _sse({**chunk, "choices": [{"index": 0, "delta": delta, "logprobs": lp,
                                               "finish_reason": reason}], **tail})

        chunks = [choice({"role": "assistant", "content": ""})]
        chunks += [choice({"content": t}, logprobs([t])) for t in tokens]
        chunks.append(choice({}, reason=finish))
        if common["include_usage"]:
            chunks.append(_sse({**chunk, "choices": [], "usage": counts}))
        chunks.append(b"data: [DONE]\n\n")
        return stream(chunks, range(1, 1 + len(tokens)), faults)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body, faults = await prepare(request, with_body=True)
        common = _common_params(body, config)
        prompt = body.get("prompt")
        if prompt is None:
            raise _missing("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise APIError(400, "This engine only supports a string prompt (or an array of one string).",
                           param="prompt", code="invalid_value")
        max_tokens = _get_int(body, "max_tokens", 0, None)
        if max_tokens is None:
            max_tokens = COMPLETIONS_DEFAULT_MAX_TOKENS
        echo = _get_bool(body, "echo")
        top = _get_int(body, "logprobs", 0, MAX_COMPLETION_LOGPROBS)
        tokens, finish = generate(prompt, max_tokens, common["stop"])
        prompt_tokens = prompt_tokens_of(prompt)
        counts = usage(count_tokens(prompt), len(tokens))
        base = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": common["model"]}
        prefix = prompt if echo else ""

        if not common["stream"]:
            lp = None
            if top is not None:
                lp = completion_logprobs((prompt_tokens if echo else []) + tokens, 0, top, echo)
            return respond({**base, "choices": [{"text": prefix + "".join(tokens), "index": 0, "logprobs": lp,
                                                 "finish_reason": finish}], "usage": counts}, faults)

        chunk = dict(base)
        tail = {"usage": None} if common["include_usage"] else {}

        def choice(text: str, lp: dict[str, Any] | None, reason: str | None = None) -> bytes:
            return _sse({**chunk, "choices": [{"text": text, "index": 0, "logprobs": lp, "finish_reason": reason}],
                         **tail})

        chunks, offset = [], 0
        if echo:
            lp = completion_logprobs(prompt_tokens, 0, top, True) if top is not None else None
            chunks.append(choice(prompt, lp))
            offset = len(prompt)
        first_content = len(chunks)
        for token in tokens:
            chunks.append(choice(token, completion_logprobs([token], offset, top, False) if top is not None else None))
            offset += len(token)
        chunks.append(choice("", None, finish))
        if common["include_usage"]:
            chunks.append(_sse({**chunk, "choices": [], "usage": counts}))
        chunks.append(b"data: [DONE]\n\n")
        return stream(chunks, range(first_content, first_content + len(tokens)), faults)

    @app.get("/_test/requests")
    async def recorded_requests() -> JSONResponse:
        return JSONResponse(list(recorded))

    @app.delete("/_test/requests")
    async def clear_requests() -> JSONResponse:
        count = len(recorded)
        recorded.clear()
        return JSONResponse({"deleted": count})

    return app


def app_from_env() -> FastAPI:
    """Granian factory: the app configured by $OPENAI_ENGINE_CONFIG (set by main())."""
    return create_app()


def __getattr__(name: str) -> Any:
    # `granian --interface asgi tests.engine.openai_engine:app` gets a default-configured app,
    # built on first use so importing this module for its helpers stays cheap.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Deterministic OpenAI-compatible engine for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", action="append", dest="models", metavar="NAME",
                        help=f"model id to serve (repeatable; default {DEFAULT_MODEL})")
    parser.add_argument("--delay-ms", type=int, default=0, help="sleep before answering and between chunks")
    parser.add_argument("--fail-after-chunks", type=int, default=None,
                        help="drop every stream after N content chunks (non-streaming: a cut body)")
    parser.add_argument("--status-code", type=int, default=None, help="answer every /v1 request with this error")
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1")
    parser.add_argument("--instance", default="",
                        help=f"a name sent back in the {INSTANCE_HEADER} header (start_engine sets one)")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="shut down when the process that started the engine dies (used by start_engine)")
    return parser


def _exit_with_parent() -> None:
    """Shut the engine down (SIGTERM to itself: granian's graceful stop) once its parent is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    config = EngineConfig(
        models=tuple(args.models or [DEFAULT_MODEL]),
        faults=Faults(delay_ms=args.delay_ms, break_after=args.fail_after_chunks, status=args.status_code),
        api_key=args.api_key,
        created=int(time.time()),
        instance=args.instance or uuid.uuid4().hex,
    )
    # granian listens with SO_REUSEPORT, so a second engine on a busy port would start and share it
    # silently: refuse a port something else listens on.
    try:
        with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as probe:
            probe.bind((args.host, args.port))
    except OSError as exc:
        sys.exit(f"openai_engine: cannot listen on {args.host}:{args.port}: address in use ({exc})")
    os.environ[CONFIG_ENV] = config.to_json()
    if args.exit_with_parent:
        _exit_with_parent()
    from granian import Granian
    from granian.constants import Interfaces

    here = Path(__file__).resolve().parent
    Granian(f"{Path(__file__).stem}:app_from_env", factory=True, working_dir=here, address=args.host,
            port=args.port, interface=Interfaces.ASGI, workers=1, log_access=False).serve()


# --------------------------------------------------------------------------- helpers for tests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_LOGS: dict[int, Path] = {}
_FLAG_NAMES = {"model": "--model", "models": "--model", "delay_ms": "--delay-ms",
               "fail_after_chunks": "--fail-after-chunks", "status_code": "--status-code", "api_key": "--api-key"}


def _flag_args(flags: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for name, value in flags.items():
        if name not in _FLAG_NAMES:
            raise TypeError(f"unknown engine flag {name!r}; known: {sorted(_FLAG_NAMES)}")
        if value is None:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            args += [_FLAG_NAMES[name], str(item)]
    return args


def engine_log(process: subprocess.Popen) -> str:
    """What the engine process printed so far (granian's log)."""
    path = _LOGS.get(process.pid)
    return path.read_text(errors="replace") if path and path.exists() else ""


def start_engine(port: int | None = None, timeout: float = 20.0, **flags: Any) -> tuple[subprocess.Popen, str]:
    """Start the engine as a subprocess on 127.0.0.1 and wait until GET /v1/models answers.

    flags: model (a name or a list of names), delay_ms, fail_after_chunks, status_code, api_key.
    Returns (process, base_url) with base_url like "http://127.0.0.1:PORT" (the OpenAI client
    wants base_url + "/v1"). The request log is empty when this returns. Stop it with stop_engine.
    """
    import httpx

    args = _flag_args(flags)
    attempts = 1 if port is not None else 3  # a free port can be taken before the engine binds it
    for attempt in range(attempts):
        chosen = port if port is not None else free_port()
        instance = uuid.uuid4().hex
        fd, name = tempfile.mkstemp(prefix="openai-engine-", suffix=".log")
        log = Path(name)
        with os.fdopen(fd, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--port", str(chosen), "--instance", instance,
                 "--exit-with-parent", *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        _LOGS[process.pid] = log
        base_url = f"http://127.0.0.1:{chosen}"
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, headers={FAULT_HEADER: "none"}) as client:
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    answer = client.get(f"{base_url}/v1/models", headers=_auth(flags))
                except httpx.TransportError:
                    answer = None
                if answer is None or answer.headers.get(INSTANCE_HEADER) != instance:  # not (yet) ours
                    time.sleep(0.05)
                    continue
                client.delete(f"{base_url}/_test/requests")
                return process, base_url
        output = engine_log(process)
        exited = process.poll()
        stop_engine(process)
        if attempt + 1 == attempts or "address in use" not in output:
            why = f"exited with status {exited}" if exited is not None else f"did not answer within {timeout:.0f} s"
            raise RuntimeError(f"the engine on {base_url} {why}:\n{output[-3000:]}")
    raise AssertionError("unreachable")


def _auth(flags: dict[str, Any]) -> dict[str, str]:
    return {"authorization": f"Bearer {flags['api_key']}"} if flags.get("api_key") else {}


def stop_engine(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """Stop the engine (SIGTERM, then SIGKILL to its process group) and remove its log."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:  # granian's worker is in the engine's own session / process group
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait(timeout)
    log = _LOGS.pop(process.pid, None)
    if log is not None:
        log.unlink(missing_ok=True)


@contextmanager
def running_engine(port: int | None = None, **flags: Any) -> Iterator[str]:
    """`with running_engine(model="m") as base_url:` start_engine/stop_engine around a block."""
    process, base_url = start_engine(port, **flags)
    try:
        yield base_url
    finally:
        stop_engine(process)


if __name__ == "__main__":
    main()
