"""One call through the gateway: `/v1/chat/completions` and `/v1/completions`, on bare ASGI.

A request goes: API key -> the repo named by `model` (`lookup`) -> the engine switch -> the
tier's depth of access and size limits (`params`) -> the releaser's policy hook -> the rate limiter
(tokens charged up front: estimated prompt plus max_tokens for each choice) -> the engine, which is
always sent a max_tokens when the tier bounds it. The answer is passed through
(streams chunk by chunk, as the engine's bytes arrive); the token charge is then settled from
the engine's `usage` (a stream's last chunk, which the gateway always asks for; estimated when
the stream is cut), and the call is metered off the request path.

This is the hottest path of a hosted release, so it runs on ASGI directly (no routing, no
dependency solving, no response objects) and reads the database inline on SQLite (indexed reads
of a few microseconds; a thread hop would cost more than the read) and in a worker thread on
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from anyio import to_thread
from starlette.types import Receive, Scope, Send

from .errors import GatewayError, header_list, json_bytes, send_bytes
from .lookup import KeyContext, Target, lookup
from .metering import Call
from .params import (
    Caps,
    answer_estimate,
    check_depth,
    estimate_tokens,
    normalise,
    prompt_text,
    prompt_token_ids,
    token_caps,
)
from .ratelimit import Decision
from .tokenizing import count_prompt, counters
from .upstream import EngineTimeout, EngineUnreachable, Upstream

log = logging.getLogger("releasehub.gateway")
MAX_BODY_BYTES = 32 * 1024 * 1024
WATCH_AFTER_S = 1.0  # a call still waiting on the engine after this long watches for its client hanging up
ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
# Cheap looks into an SSE event before parsing it: only events that carry a usage are parsed.
_HAS_USAGE = re.compile(rb'"usage"\s*:\s*(?!null)')
_HAS_CONTENT = re.compile(rb'"(?:content|text)"\s*:\s*"(?!")')
# An empty delta is a token too when it opens no message: vLLM sends `"content":""` for a token that
# ends inside a UTF-8 character (the first delta, with the role, is not a token).
_EMPTY_CONTENT = re.compile(rb'"(?:content|text)"\s*:\s*""')
_HAS_ROLE = re.compile(rb'"role"\s*:')


class _ClientGone(Exception):
    """The API client hung up."""


# ---------------------------------------------------------------------------------------------
# Request checks


def bearer(value: str | None) -> str:
    scheme, _, secret = (value or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise GatewayError(401, "Pass your API key as `Authorization: Bearer rhk_...` (the OpenAI client's "
                                "api_key). Ask the releaser for one.", code="invalid_api_key")
    return secret.strip()


async def run_hook(upstream: Upstream, target: Target, text: str, token_ids: int = 0) -> str | None:
    """The releaser's policy hook, on the prompt's text normalised (`params.normalise`): the reason
    for a refusal, or None. A prompt given as token ids cannot be read, so it is refused when a hook is set."""
    if not target.hosted.blocklist and not target.hosted.moderation_url:
        return None
    if token_ids:
        return "the releaser checks prompts as text; send the prompt as text, not token ids"
    text = normalise(text)
    for pattern in target.hosted.blocklist:
        if re.search(pattern, text, flags=re.IGNORECASE):
            return "the request matches a pattern the releaser blocks"
    url = target.hosted.moderation_url
    if url:
        try:
            data = await upstream.post_json(url, {"input": text, "model": target.repo_id})
        except EngineUnreachable as exc:
            raise GatewayError(502, f"The releaser's moderation service failed ({exc}); the request was not "
                                    "forwarded.", type="api_error", code="moderation_unavailable") from None
        results = data.get("results") if isinstance(data, Mapping) else None
        flagged = data.get("flagged") if isinstance(data, Mapping) else None
        if isinstance(results, list) and results and isinstance(results[0], Mapping):
            flagged = results[0].get("flagged")
        if flagged:
            return "the releaser's moderation service flagged the request"
    return None


# ---------------------------------------------------------------------------------------------
# The call


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _ClientGone
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts, size = [body], len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        part = message.get("body", b"")
        size += len(part)
        if size > MAX_BODY_BYTES:
            raise GatewayError(413, f"The request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB.",
                               code="request_too_large")
        parts.append(part)
        if not message.get("more_body"):
            return b"".join(parts)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def handle(scope: Scope, receive: Receive, send: Send, endpoint: str) -> None:
    """Answer one OpenAI-style call (`endpoint`: "chat" or "completions") on ASGI."""
    started = time.perf_counter()
    app = scope["app"]
    services, gateway = app.state.services, app.state.gateway
    try:
        secret = bearer(_header(scope, b"authorization"))
        try:
            body = json.loads(await _read_body(receive))
        except ValueError:
            raise GatewayError(400, "The body is not valid JSON.") from None
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise GatewayError(400, "Give the model to call as `model` (a repo id such as lab/llama-hosted).",
                               param="model")
        if services.db.inline_reads:
            ctx, target = lookup(services.db, secret, body["model"])
        else:
            ctx, target = await to_thread.run_sync(lookup, services.db, secret, body["model"])
    except GatewayError as exc:
        await exc.send(send)
        return
    except _ClientGone:
        return
    try:
        await _Call(gateway, ctx, target, endpoint, body, started, services).run(receive, send)
    except (_ClientGone, OSError):  # ASGI servers raise OSError on a send to a client that hung up
        pass  # metered; nobody to answer


class _Call:
    """The state of one call that got past the key and the repo: checks, limits, engine, metering."""

    def __init__(self, gateway: Any, ctx: KeyContext, target: Target, endpoint: str, body: dict[str, Any],
                 started: float, services: Any = None) -> None:
        self.gateway, self.ctx, self.target, self.endpoint, self.body = gateway, ctx, target, endpoint, body
        self.services = services
        self.started = started
        self.stream = bool(body.get("stream"))
        self.decision: Decision | None = None
        self.prompt_estimate = 1
        self.caps = Caps(1, 1, None)
        self._renewal: asyncio.TimerHandle | None = None
        self._renewing: asyncio.Future[bool] | None = None  # the event loop keeps only weak references
        self._metered = False

    # -- metering and settlement

    def meter(self, status: int, outcome: str, *, usage: tuple[int, int] | None = None, reason: str | None = None,
              estimated: bool = False) -> None:
        if self._metered:
            return  # once per call: a hang-up noticed while answering changes nothing
        self._metered = True
        tokens_in, tokens_out = usage or (0, 0)
        prompt = None
        if self.target.hosted.store_prompts:
            prompt = self.body.get("messages") if self.endpoint == "chat" else self.body.get("prompt")
        self.gateway.recorder.add(Call(
            key_pk=self.ctx.key_pk, key_id=self.ctx.key_id, user=self.ctx.subject.name or "?",
            repo_pk=self.target.repo_pk, repo=self.target.repo_id, endpoint=self.endpoint, status=status,
            outcome=outcome, prompt_tokens=tokens_in, completion_tokens=tokens_out,
            latency_ms=(time.perf_counter() - self.started) * 1000, stream=self.stream, reason=reason,
            estimated=estimated, prompt=prompt))

    async def settle(self, used_tokens: int) -> None:
        reservation = self.decision.reservation if self.decision is not None else None
        if reservation is None:
            return
        self.decision = None  # settled once, whatever path gets here first
        if self._renewal is not None:
            self._renewal.cancel()
        await self.gateway.limiter.settle(reservation, used_tokens)
        await self.gateway.limiter.release(reservation)

    async def fail(self, send: Send, error: GatewayError, outcome: str, reason: str, used_tokens: int) -> None:
        await self.settle(used_tokens)
        self.meter(error.status, outcome, reason=reason)
        await error.send(send)

    def _schedule_renewal(self) -> None:
        """A call that holds a concurrency slot keeps it for as long as it runs: its lease is renewed
        at half its length (a timer, not a task, so calls shorter than that cost nothing)."""
        self._renewal = asyncio.get_running_loop().call_later(self.gateway.limiter.lease_seconds / 2, self._renew)

    def _renew(self) -> None:
        reservation = self.decision.reservation if self.decision is not None else None
        if reservation is None:
            return
        self._renewing = asyncio.ensure_future(self.gateway.limiter.renew(reservation))
        self._renewing.add_done_callback(_log_renewal)
        self._schedule_renewal()

    # -- the steps

    async def prompt_tokens(self, text: str, token_ids: int) -> int:
        """The prompt's tokens: counted with the repo's own tokenizer when its head commit has one
        (`tokenizing`), else estimated from the text's bytes; token ids count one token each."""
        services = self.services
        if services is not None and self.target.head_commit is not None:
            counter = await counters.get(services.db, services.store, self.target.repo_pk, self.target.head_commit)
            if counter is not None:
                return max(1, await count_prompt(counter, self.endpoint, self.body, len(text)) + token_ids)
        return estimate_tokens(text) + token_ids

    async def admit(self) -> GatewayError | None:
        """Depth, size, the policy hook and the rate limiter: the error that refuses the call, or None."""
        body, target, model = self.body, self.target, self.body["model"]
        try:
            check_depth(self.endpoint, body, target, self.ctx.tier)
            text = prompt_text(self.endpoint, body)
            token_ids = prompt_token_ids(self.endpoint, body)
            self.prompt_estimate = estimate = await self.prompt_tokens(text, token_ids)
            self.caps = caps = token_caps(self.endpoint, body, target.api, estimate)
            refusal = await run_hook(self.gateway.upstream, target, text, token_ids)
            if refusal is not None:
                raise GatewayError(400, f"Your request was refused: {refusal}.", code="content_policy_violation")
        except GatewayError as exc:
            self.meter(exc.status, "refused", reason=exc.code or exc.message)
            return exc
        charge = caps.charge(estimate)
        decision = await self.gateway.limiter.acquire(self.ctx.key_id, target.terms.limits, charge)
        if decision.allowed:
            self.decision = decision
            if decision.reservation is not None and decision.reservation.slot:
                self._schedule_renewal()
            return None
        error = self._limited(decision, charge, model)
        self.meter(error.status, "refused", reason=f"rate limit: {decision.refused}")
        return error

    def _limited(self, decision: Decision, charge: int, model: str) -> GatewayError:
        if decision.too_large:
            per = f" ({self.caps.choices} choices)" if self.caps.choices > 1 else ""
            return GatewayError(400, f"This request may use {charge} tokens{per}, more than your tier's "
                                     f"{self.target.api.tokens_per_minute} tokens per minute: lower max_tokens"
                                     f"{' or n' if per else ''}.",
                                param="max_tokens", code="rate_limit_exceeded", headers=decision.headers())
        what = {"requests": "requests per minute", "tokens": "tokens per minute",
                "requests_per_day": "requests per day",
                "concurrency": "requests in flight"}[decision.refused or "requests"]
        return GatewayError(429, f"Rate limit reached for {model} on {what} (tier {self.ctx.tier!r}). Please "
                                 f"try again in {math.ceil(decision.retry_after or 1)}s.",
                            type="requests", code="rate_limit_exceeded", headers=decision.headers())

    def forward(self) -> tuple[str, bytes, dict[str, str]]:
        """The engine's URL, the body sent to it and its headers."""
        hosted, body = self.target.hosted, self.body
        forward = dict(body)
        forward["model"] = hosted.engine_model
        if self.caps.forward is not None:
            forward["max_tokens"] = self.caps.forward  # the engine never runs past the tier's caps
        if self.stream:
            forward["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        headers = {"content-type": "application/json"}
        if hosted.api_key_env and os.environ.get(hosted.api_key_env):
            headers["authorization"] = f"Bearer {os.environ[hosted.api_key_env]}"
        path = "chat/completions" if self.endpoint == "chat" else "completions"
        return f"{hosted.backend_url}/{path}", json.dumps(forward).encode(), headers

    async def run(self, receive: Receive, send: Send) -> None:
        refused = await self.admit()
        if refused is not None:
            await refused.send(send)
            return
        assert self.decision is not None
        rate_headers = self.decision.headers()
        model, hosted = self.body["model"], self.target.hosted
        url, data, headers = self.forward()
        watch = _HangUpWatch(receive)
        try:
            try:
                upstream = await self.gateway.upstream.post(url, data, headers, hosted.timeout_s)
            except EngineTimeout:
                return await self.fail(send, GatewayError(
                    504, f"The engine behind {model} did not answer within {hosted.timeout_s:g}s.",
                    type="api_error", code="engine_timeout", headers=rate_headers),
                    "error", "engine timeout", self.prompt_estimate)
            except EngineUnreachable as exc:
                return await self.fail(send, GatewayError(
                    502, f"The engine behind {model} is unreachable ({exc}); the releaser has been told through "
                         "the audit log. Try again later.", type="api_error", code="engine_unavailable",
                    headers=rate_headers), "error", f"engine unreachable: {exc}", self.prompt_estimate)
            try:
                if upstream.status >= 400 or not self.stream:
                    await self.whole(upstream, send, rate_headers)
                else:
                    watch.stop()  # the relay watches for itself, from the first byte on
                    await self.relay(upstream, receive, send, rate_headers)
            finally:
                upstream.release()  # closes the connection instead when the answer was not read whole
                await self.settle(self.prompt_estimate)  # only when nothing settled it (cancelled)
        except asyncio.CancelledError:
            if not watch.fired:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await self.settle(self.prompt_estimate)
            self.meter(499, "cancelled", usage=(self.prompt_estimate, 0), estimated=True,
                       reason="the client hung up before the answer")
        finally:
            watch.stop()

    async def whole(self, upstream: aiohttp.ClientResponse, send: Send, rate_headers: dict[str, str]) -> None:
        """A non-streaming answer (or an engine's error): read it whole, settle, pass it on."""
        try:
            raw = await upstream.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            return await self.fail(send, GatewayError(502, "The engine's answer was cut off.", type="api_error",
                                                      code="engine_unavailable", headers=rate_headers),
                                   "error", f"engine broke: {type(exc).__name__}", self.prompt_estimate)
        usage = usage_of(raw)
        ok = upstream.status < 400
        estimated = usage is None and ok
        if estimated:  # an answer without usage: its choices' text, all n (or best_of) of them
            usage = (self.prompt_estimate, answer_estimate(raw, self.caps.choices))
        await self.settle((usage[0] + usage[1]) if usage else self.prompt_estimate)
        self.meter(upstream.status, "ok" if ok else "error", usage=usage, estimated=estimated,
                   reason=None if ok else f"engine answered {upstream.status}")
        media = upstream.headers.get("content-type", "application/json").split(";")[0]
        await send_bytes(send, upstream.status, raw, media.encode("latin-1"), rate_headers)

    async def relay(self, upstream: aiohttp.ClientResponse, receive: Receive, send: Send,
                    rate_headers: dict[str, str]) -> None:
        """Pass the engine's SSE events on as they come; note the usage; settle and meter whatever happens."""
        events = SseEvents(wants_usage=bool((self.body.get("stream_options") or {}).get("include_usage")))
        status, outcome, reason = 200, "ok", None
        watcher = asyncio.ensure_future(_disconnected(receive))
        # The client hung up: close the engine's connection too, so that it stops generating.
        watcher.add_done_callback(lambda task: None if not _hung_up(task) else upstream.close())
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": _SSE_HEADERS + header_list(rate_headers)})
            async for piece in upstream.content.iter_any():
                out = events.feed(piece)
                if out:
                    await _send_body(send, out)
            if _hung_up(watcher):  # closing the engine's stream may end it quietly
                raise _ClientGone
            rest = events.end()
            if rest:
                await _send_body(send, rest)
            if events.usage is None:
                status, outcome, reason = 502, "error", "stream ended without usage"
        except (TimeoutError, aiohttp.ClientError) as exc:
            if _hung_up(watcher):
                status, outcome, reason = 499, "cancelled", "the client hung up"
            else:
                status, outcome, reason = 502, "error", f"engine stream broke: {type(exc).__name__}"
                error = GatewayError(502, "The engine's stream broke off; the answer is incomplete.",
                                     type="api_error", code="engine_stream_broken")
                await _send_body(send, b"data: " + json_bytes(error.body()) + b"\n\n")
        except _ClientGone:
            status, outcome, reason = 499, "cancelled", "the client hung up"
        finally:
            watcher.cancel()
            gone = outcome == "cancelled"
            if gone and events.done and events.usage is not None:
                # The whole answer, [DONE] included, reached the client before it hung up: a
                # finished call, not a cancelled one.
                status, outcome, reason = 200, "ok", None
            usage = events.usage
            estimated = usage is None
            if usage is None:
                usage = (self.prompt_estimate, events.content_chunks)
            await self.settle(usage[0] + usage[1])
            self.meter(status, outcome, usage=usage, reason=reason, estimated=estimated)
        if not gone:
            try:
                await _send_body(send, b"", more=False)
            except (_ClientGone, OSError):
                pass  # it hung up after the last event


def usage_of(raw: bytes) -> tuple[int, int] | None:
    try:
        usage = json.loads(raw).get("usage")
        return int(usage["prompt_tokens"]), int(usage.get("completion_tokens") or 0)
    except (ValueError, AttributeError, KeyError, TypeError):
        return None


class SseEvents:
    """An engine's SSE stream, cut into events as its bytes arrive (events may span or share
    reads; lines may end in CRLF). Notes the usage the gateway asked for and passes it on only
    when the client asked too; counts the events with content (about a token each), the estimate
    when a stream is cut before its usage (an empty delta without a role counts: a token ending inside
    a UTF-8 character). Only events that carry a usage are parsed."""

    def __init__(self, *, wants_usage: bool) -> None:
        self.wants_usage = wants_usage
        self.usage: tuple[int, int] | None = None
        self.content_chunks = 0
        self.done = False  # the engine's `data: [DONE]` was passed on
        self._buffer = b""

    def feed(self, piece: bytes) -> bytes:
        """What to pass on now: the complete events received so far, each ending in a blank line."""
        self._buffer += piece
        if b"\r" in piece:
            self._buffer = self._buffer.replace(b"\r\n", b"\n")
        if b"\n\n" not in self._buffer:
            return b""
        *events, self._buffer = self._buffer.split(b"\n\n")
        out = []
        for event in events:
            if not event.strip():
                continue
            kept = self._event(event)
            if kept is not None:
                out.append(kept)
                out.append(b"\n\n")
        return b"".join(out)

    def end(self) -> bytes:
        """The last event when the stream ended without a blank line after it."""
        rest, self._buffer = self._buffer.strip(), b""
        kept = self._event(rest) if rest else None
        return kept + b"\n\n" if kept else b""

    def _event(self, event: bytes) -> bytes | None:
        data = event[5:].strip() if event.startswith(b"data:") else b""
        if not data:
            return event
        if data == b"[DONE]":
            self.done = True
            return event
        if _HAS_CONTENT.search(data) or (_EMPTY_CONTENT.search(data) and not _HAS_ROLE.search(data)):
            self.content_chunks += 1
        if not _HAS_USAGE.search(data):
            return event
        try:
            chunk = json.loads(data)
        except ValueError:
            return event
        if not isinstance(chunk, dict) or not chunk.get("usage"):
            return event
        self.usage = usage_of(data) or self.usage
        if self.wants_usage:
            return event
        if not chunk.get("choices"):
            return None  # the gateway asked for the usage chunk; the client did not
        chunk.pop("usage", None)
        return b"data: " + json.dumps(chunk).encode()


def _log_renewal(done: asyncio.Future[bool]) -> None:
    if done.cancelled():
        return
    if done.exception() is not None:
        log.warning("renewing a concurrency lease failed: %r", done.exception())
    elif not done.result():
        log.warning("a concurrency lease had expired before it was renewed (the event loop was stalled?)")


async def _send_body(send: Send, body: bytes, more: bool = True) -> None:
    try:
        await send({"type": "http.response.body", "body": body, "more_body": more})
    except OSError:  # the server's way of saying the client is gone
        raise _ClientGone from None


class _HangUpWatch:
    """Lets a call that waits on the engine notice its client hanging up. After `after` seconds it
    starts waiting for the client's disconnect, which then cancels the call's task: aiohttp drops
    the engine's connection, so the engine stops generating too. A call answered sooner costs one
    timer; a stream is watched by its relay once its first bytes have come."""

    def __init__(self, receive: Receive, after: float = WATCH_AFTER_S) -> None:
        self.fired = False
        self._receive = receive
        self._task = asyncio.current_task()
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(after, self._arm)

    def _arm(self) -> None:
        self._timer = None
        self._waiter = asyncio.ensure_future(_disconnected(self._receive))
        self._waiter.add_done_callback(self._hang_up)

    def _hang_up(self, waiter: asyncio.Future[None]) -> None:
        if _hung_up(waiter) and self._task is not None:
            self.fired = True
            self._task.cancel()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()


def _hung_up(watcher: asyncio.Future[None]) -> bool:
    return watcher.done() and not watcher.cancelled() and watcher.exception() is None


async def _disconnected(receive: Receive) -> None:
    """Returns when the client hangs up (the request body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass
