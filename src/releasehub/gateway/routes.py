"""The OpenAI-compatible API: `/v1/models`, `/v1/chat/completions`, `/v1/completions`.

A request goes: API key (revoked or expired keys stop here) -> the repo named by `model`, which
the key must list and the key's user must still be allowed to read (`decide`) -> the engine
switch -> the tier's depth of access and size limits -> the releaser's policy hook -> the rate
limiter (tokens charged up front: estimated prompt plus max_tokens) -> the engine. The answer
is passed through (streams chunk by chunk); the token charge is then settled from the engine's
`usage` (a stream's last chunk, which the gateway always asks for; estimated when the stream is
cut), and the call is metered. Errors use OpenAI's shape, `{"error": {message, type, param, code}}`.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from releasehub.access import Permission, RepoPolicy, decide
from releasehub.access import service as access_service
from releasehub.access.policy import TierApi
from releasehub.accounts.models import Membership, Org, User
from releasehub.accounts.subject import Subject
from releasehub.db import as_utc, utcnow
from releasehub.repos.models import Repo
from releasehub.services import Services

from .metering import Call
from .models import ApiKey, ApiKeyRepo, HostedModel
from .ratelimit import Decision, Limits
from .service import hash_secret, tier_api, tiers_allowing

router = APIRouter(tags=["gateway"])
DEFAULT_MAX_TOKENS = 1024  # charged when a request sets no max_tokens and the tier caps none


class GatewayError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


async def gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return exc.response()


@dataclass(frozen=True)
class KeyContext:
    key_pk: int
    key_id: str
    tier: str
    subject: Subject
    repo_pks: tuple[int, ...]


@dataclass(frozen=True)
class Target:
    repo_pk: int
    repo_id: str
    hosted: dict[str, Any]
    api: TierApi
    doc_tiers_logprobs: tuple[str, ...]
    doc_tiers_echo: tuple[str, ...]


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise GatewayError(401, "Pass your API key as `Authorization: Bearer rhk_...` (the OpenAI client's "
                                "api_key). Ask the releaser for one.", code="invalid_api_key")
    return secret.strip()


# Built once: the lookups run on every call, on a bare connection (no ORM), like token authentication.
_KEY_LOOKUP = (
    select(ApiKey.id, ApiKey.key_id, ApiKey.tier, ApiKey.expires_at, ApiKey.revoked_at, ApiKey.revoked_reason,
           User.id, User.name, User.is_admin, Org.name, Membership.role)
    .join(User, User.id == ApiKey.user_id)
    .outerjoin(Membership, Membership.user_id == User.id)
    .outerjoin(Org, Org.id == Membership.org_id)
    .where(ApiKey.secret_hash == bindparam("secret_hash"))
)
_KEY_REPOS = select(ApiKeyRepo.repo_id).where(ApiKeyRepo.key_pk == bindparam("key_pk"))
_TARGET_LOOKUP = (
    select(Repo.id, Repo.namespace, Repo.name, Repo.visibility, Repo.gated, Repo.policy_version, Repo.policy,
           HostedModel.id, HostedModel.enabled, HostedModel.disabled_reason, HostedModel.backend_url,
           HostedModel.engine_model, HostedModel.api_key_env, HostedModel.timeout_s, HostedModel.store_prompts,
           HostedModel.blocklist, HostedModel.moderation_url)
    .join(ApiKeyRepo, (ApiKeyRepo.repo_id == Repo.id) & (ApiKeyRepo.key_pk == bindparam("key_pk")))
    .outerjoin(HostedModel, HostedModel.repo_id == Repo.id)
    .where(Repo.namespace == bindparam("namespace"), Repo.name == bindparam("name"))
)


def _load_key(conn: Connection, secret: str, *, with_repos: bool = False) -> KeyContext:
    rows = conn.execute(_KEY_LOOKUP, {"secret_hash": hash_secret(secret)}).all()
    if not rows:
        raise GatewayError(401, "Incorrect API key provided.", code="invalid_api_key")
    key_pk, key_id, tier, expires_at, revoked_at, revoked_reason, user_id, user_name, is_admin, _, _ = rows[0]
    if revoked_at is not None:
        why = f": {revoked_reason}" if revoked_reason else ""
        raise GatewayError(401, f"API key {key_id} was revoked{why}.", code="invalid_api_key")
    expires = as_utc(expires_at)
    if expires is not None and expires <= utcnow():
        raise GatewayError(401, f"API key {key_id} expired on {expires:%Y-%m-%d}; ask the releaser for a new one.",
                           code="invalid_api_key")
    roles = {row[9]: row[10] for row in rows if row[9] is not None}
    subject = Subject(user_id=user_id, name=user_name, is_admin=is_admin, scope="read", org_roles=roles)
    repo_pks = tuple(conn.execute(_KEY_REPOS, {"key_pk": key_pk}).scalars()) if with_repos else ()
    return KeyContext(key_pk, key_id, tier, subject, repo_pks)


def _load_target(conn: Connection, ctx: KeyContext, model: str) -> Target:
    unknown = GatewayError(404, f"The model `{model}` does not exist or you do not have access to it.",
                           code="model_not_found", param="model")
    namespace, _, name = model.partition("/")
    row = conn.execute(_TARGET_LOOKUP, {"key_pk": ctx.key_pk, "namespace": namespace, "name": name}).first() \
        if name else None
    if row is None:
        raise unknown
    (repo_pk, namespace, name, visibility, gated, version, raw, hosted_pk, enabled, disabled_reason, backend_url,
     engine_model, api_key_env, timeout_s, store_prompts, blocklist, moderation_url) = row
    rules, doc = access_service.compiled_policy(repo_pk, version, raw)
    policy = RepoPolicy(model, namespace, visibility, gated, rules)
    if hosted_pk is None or not decide(ctx.subject, policy, Permission.REPO_READ, utcnow()).allowed:
        raise unknown
    if not enabled:
        raise GatewayError(503, f"{model} is switched off by its releaser"
                                f"{': ' + disabled_reason if disabled_reason else ''}.",
                           type="service_unavailable", code="model_disabled")
    api = tier_api(doc, ctx.tier)
    if api is None:
        raise GatewayError(403, f"Your key's tier {ctx.tier!r} no longer exists on {model}; ask the releaser for a "
                                "new key.", type="permission_error", code="tier_not_found")
    hosted_json = {"backend_url": backend_url, "engine_model": engine_model, "api_key_env": api_key_env,
                   "timeout_s": timeout_s, "store_prompts": store_prompts, "blocklist": list(blocklist or ()),
                   "moderation_url": moderation_url}
    return Target(repo_pk, model, hosted_json, api, tuple(tiers_allowing(doc, "logprobs")),
                  tuple(tiers_allowing(doc, "echo")))


def _lookup(services: Services, secret: str, model: str) -> tuple[KeyContext, Target]:
    """The key, then the repo it calls: two indexed reads on one connection, in one thread hop."""
    with services.db.engine.connect() as conn:
        ctx = _load_key(conn, secret)
        return ctx, _load_target(conn, ctx, model)


# ---------------------------------------------------------------------------------------------
# Request checks


def prompt_text(endpoint: str, body: Mapping[str, Any]) -> str:
    if endpoint == "chat":
        parts = []
        for message in body.get("messages") or []:
            content = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(p.get("text", "") for p in content if isinstance(p, Mapping))
        return "\n".join(parts)
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        return "\n".join(p for p in prompt if isinstance(p, str))
    return prompt if isinstance(prompt, str) else ""


def estimate_tokens(text: str) -> int:
    """About four characters a token (English text under BPE tokenizers); the engine's usage settles it."""
    return max(1, math.ceil(len(text) / 4))


def _who_allows(tiers: tuple[str, ...], what: str) -> str:
    if tiers:
        return f" The {', '.join(repr(t) for t in tiers)} tier{'s' if len(tiers) > 1 else ''} allow{'' if len(tiers) > 1 else 's'} {what}."
    return f" No tier of this model allows {what}."


def check_depth(endpoint: str, body: Mapping[str, Any], target: Target, tier: str) -> None:
    api = target.api
    wants_logprobs = bool(body.get("logprobs")) if endpoint == "chat" else body.get("logprobs") is not None
    top = body.get("top_logprobs") if endpoint == "chat" else body.get("logprobs")
    if wants_logprobs and not api.logprobs:
        raise GatewayError(403, f"Your tier {tier!r} gives sampled outputs only, not logprobs."
                                + _who_allows(target.doc_tiers_logprobs, "logprobs"),
                           type="permission_error", code="depth_not_allowed", param="logprobs")
    if isinstance(top, int) and not isinstance(top, bool) and top > api.top_logprobs and wants_logprobs:
        raise GatewayError(403, f"Your tier {tier!r} allows at most {api.top_logprobs} top logprobs, not {top}.",
                           type="permission_error", code="depth_not_allowed",
                           param="top_logprobs" if endpoint == "chat" else "logprobs")
    if endpoint == "completions" and body.get("echo") and not api.echo:
        raise GatewayError(403, f"Your tier {tier!r} does not allow echo (prompt logprobs)."
                                + _who_allows(target.doc_tiers_echo, "echo"),
                           type="permission_error", code="depth_not_allowed", param="echo")


def requested_max_tokens(endpoint: str, body: Mapping[str, Any], api: TierApi) -> int:
    value = body.get("max_completion_tokens") if endpoint == "chat" else None
    if value is None:
        value = body.get("max_tokens")
    if value is None:
        return api.max_tokens or DEFAULT_MAX_TOKENS
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise GatewayError(400, "max_tokens must be a positive integer.", param="max_tokens")
    if api.max_tokens is not None and value > api.max_tokens:
        raise GatewayError(400, f"max_tokens is {value}, more than your tier's {api.max_tokens}.",
                           param="max_tokens", code="max_tokens_exceeded")
    return value


async def run_hook(client: httpx.AsyncClient, target: Target, text: str) -> str | None:
    """The releaser's policy hook: the reason for a refusal, or None."""
    for pattern in target.hosted["blocklist"]:
        if re.search(pattern, text, flags=re.IGNORECASE):
            return "the request matches a pattern the releaser blocks"
    url = target.hosted["moderation_url"]
    if url:
        try:
            answer = await client.post(url, json={"input": text, "model": target.repo_id}, timeout=10)
            answer.raise_for_status()
            data = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise GatewayError(502, f"The releaser's moderation service failed ({type(exc).__name__}); the request "
                                    "was not forwarded.", type="api_error", code="moderation_unavailable") from None
        results = data.get("results") if isinstance(data, Mapping) else None
        flagged = data.get("flagged") if isinstance(data, Mapping) else None
        if isinstance(results, list) and results and isinstance(results[0], Mapping):
            flagged = results[0].get("flagged")
        if flagged:
            return "the releaser's moderation service flagged the request"
    return None


# ---------------------------------------------------------------------------------------------
# The routes


def _services(request: Request) -> Services:
    return request.app.state.services


async def gateway_caller(request: Request) -> str:
    """The API key secret of the request (401 in OpenAI's shape without one); checked with the repo."""
    return _bearer(request)


gateway_caller.permission = Permission.GATEWAY_CALL  # type: ignore[attr-defined]


def _limits(api: TierApi) -> Limits:
    return Limits(requests_per_minute=api.requests_per_minute, tokens_per_minute=api.tokens_per_minute,
                  requests_per_day=api.requests_per_day, concurrency=api.concurrency)


@router.get("/v1/models")
async def list_models(request: Request, secret: str = Depends(gateway_caller)) -> dict[str, Any]:
    def load() -> list[dict[str, Any]]:
        services = _services(request)
        out = []
        with services.db.engine.connect() as conn:
            ctx = _load_key(conn, secret, with_repos=True)
        with services.db.session() as session:
            rows = session.execute(select(Repo, HostedModel).join(HostedModel, HostedModel.repo_id == Repo.id)
                                   .where(Repo.id.in_(ctx.repo_pks), HostedModel.enabled.is_(True))).all()
            for repo, hosted in rows:
                if decide(ctx.subject, access_service.repo_policy(repo), Permission.REPO_READ, utcnow()).allowed:
                    out.append({"id": repo.repo_id, "object": "model",
                                "created": int(as_utc(hosted.created_at).timestamp()), "owned_by": repo.namespace})
        return out

    return {"object": "list", "data": await run_in_threadpool(load)}


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, secret: str = Depends(gateway_caller)) -> Response:
    return await _call(request, secret, "chat")


@router.post("/v1/completions")
async def completions(request: Request, secret: str = Depends(gateway_caller)) -> Response:
    return await _call(request, secret, "completions")


async def _call(request: Request, secret: str, endpoint: str) -> Response:
    started = time.perf_counter()
    gateway = request.app.state.gateway
    try:
        body = json.loads(await request.body())
    except ValueError:
        return GatewayError(400, "The body is not valid JSON.").response()
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return GatewayError(400, "Give the model to call as `model` (a repo id such as lab/llama-hosted).",
                            param="model").response()
    try:
        ctx, target = await run_in_threadpool(_lookup, _services(request), secret, body["model"])
    except GatewayError as exc:
        return exc.response()
    meter = _Meter(gateway, ctx, target, endpoint, started, bool(body.get("stream")))
    text = prompt_text(endpoint, body)
    try:
        check_depth(endpoint, body, target, ctx.tier)
        max_tokens = requested_max_tokens(endpoint, body, target.api)
        prompt_estimate = estimate_tokens(text)
        if target.api.max_context is not None and prompt_estimate + max_tokens > target.api.max_context:
            raise GatewayError(400, f"The prompt (about {prompt_estimate} tokens) plus max_tokens ({max_tokens}) is "
                                    f"more than your tier's context of {target.api.max_context} tokens.",
                               param="messages" if endpoint == "chat" else "prompt", code="context_length_exceeded")
        refusal = await run_hook(gateway.client, target, text)
        if refusal is not None:
            raise GatewayError(400, f"Your request was refused: {refusal}.", code="content_policy_violation")
    except GatewayError as exc:
        meter.done(exc.status, "refused", reason=exc.code or exc.message)
        return exc.response()

    decision: Decision = await gateway.limiter.acquire(ctx.key_id, _limits(target.api), prompt_estimate + max_tokens)
    if not decision.allowed:
        if decision.too_large:
            error = GatewayError(400, f"This request may use {prompt_estimate + max_tokens} tokens, more than your "
                                      f"tier's {target.api.tokens_per_minute} tokens per minute: lower max_tokens.",
                                 param="max_tokens", code="rate_limit_exceeded", headers=decision.headers())
        else:
            what = {"requests": "requests per minute", "tokens": "tokens per minute",
                    "requests_per_day": "requests per day", "concurrency": "requests in flight"}[decision.refused or "requests"]
            error = GatewayError(429, f"Rate limit reached for {body['model']} on {what} (tier {ctx.tier!r}). Please "
                                      f"try again in {math.ceil(decision.retry_after or 1)}s.",
                                 type="requests", code="rate_limit_exceeded", headers=decision.headers())
        meter.done(error.status, "refused", reason=f"rate limit: {decision.refused}")
        return error.response()

    assert decision.reservation is not None
    forward = dict(body)
    forward["model"] = target.hosted["engine_model"]
    client_wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if body.get("stream"):
        forward["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    headers = {"content-type": "application/json"}
    env = target.hosted["api_key_env"]
    if env and os.environ.get(env):
        headers["authorization"] = f"Bearer {os.environ[env]}"
    if target.hosted["store_prompts"]:
        meter.prompt = body.get("messages") if endpoint == "chat" else body.get("prompt")
    url = f"{target.hosted['backend_url']}/{'chat/completions' if endpoint == 'chat' else 'completions'}"
    timeout = httpx.Timeout(target.hosted["timeout_s"], connect=10)
    try:
        upstream = await gateway.client.send(
            gateway.client.build_request("POST", url, json=forward, headers=headers, timeout=timeout), stream=True)
    except httpx.TimeoutException:
        await _finish(gateway, decision, prompt_estimate)
        meter.done(504, "error", reason="engine timeout")
        return GatewayError(504, f"The engine behind {body['model']} did not answer within "
                                 f"{target.hosted['timeout_s']:g}s.", type="api_error", code="engine_timeout",
                            headers=decision.headers()).response()
    except httpx.HTTPError as exc:
        await _finish(gateway, decision, prompt_estimate)
        meter.done(502, "error", reason=f"engine unreachable: {type(exc).__name__}")
        return GatewayError(502, f"The engine behind {body['model']} is unreachable ({type(exc).__name__}); the "
                                 "releaser has been told through the audit log. Try again later.",
                            type="api_error", code="engine_unavailable", headers=decision.headers()).response()

    rate_headers = decision.headers()
    if upstream.status_code >= 400 or not body.get("stream"):
        try:
            raw = await upstream.aread()
        except httpx.HTTPError as exc:
            await upstream.aclose()
            await _finish(gateway, decision, prompt_estimate)
            meter.done(502, "error", reason=f"engine broke: {type(exc).__name__}")
            return GatewayError(502, "The engine's answer was cut off.", type="api_error",
                                code="engine_unavailable", headers=rate_headers).response()
        except BaseException:
            await upstream.aclose()
            raise
        await upstream.aclose()
        usage = _usage_of(raw)
        used = (usage[0] + usage[1]) if usage else prompt_estimate
        await _finish(gateway, decision, used)
        ok = upstream.status_code < 400
        meter.done(upstream.status_code, "ok" if ok else "error", usage=usage,
                   reason=None if ok else f"engine answered {upstream.status_code}")
        media = upstream.headers.get("content-type", "application/json")
        return Response(raw, status_code=upstream.status_code, media_type=media.split(";")[0], headers=rate_headers)

    return StreamingResponse(_relay(upstream, gateway, decision, meter, prompt_estimate, client_wants_usage),
                             media_type="text/event-stream", headers={**rate_headers, "cache-control": "no-cache"})


def _usage_of(raw: bytes) -> tuple[int, int] | None:
    try:
        usage = json.loads(raw).get("usage")
        return int(usage["prompt_tokens"]), int(usage.get("completion_tokens") or 0)
    except (ValueError, AttributeError, KeyError, TypeError):
        return None


async def _finish(gateway: Any, decision: Decision, used_tokens: int) -> None:
    assert decision.reservation is not None
    await gateway.limiter.settle(decision.reservation, used_tokens)
    await gateway.limiter.release(decision.reservation)


async def _relay(upstream: httpx.Response, gateway: Any, decision: Decision, meter: "_Meter", prompt_estimate: int,
                 client_wants_usage: bool) -> AsyncIterator[bytes]:
    """Pass the engine's SSE events through as they come; note the usage; close cleanly whatever happens."""
    usage: tuple[int, int] | None = None
    content_chunks = 0
    status, outcome, reason = 200, "ok", None
    buffer = b""
    try:
        async for piece in upstream.aiter_raw():
            buffer += piece
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                data = event[len(b"data:"):].strip() if event.startswith(b"data:") else None
                if data and data != b"[DONE]":
                    try:
                        chunk = json.loads(data)
                    except ValueError:
                        chunk = None
                    if isinstance(chunk, dict):
                        if chunk.get("usage"):
                            usage = _usage_of(data)
                            if not chunk.get("choices") and not client_wants_usage:
                                continue  # the gateway asked for it; the client did not
                            if not client_wants_usage:
                                chunk.pop("usage", None)
                                event = b"data: " + json.dumps(chunk).encode()
                        if any(isinstance(c, dict) and ((c.get("delta") or {}).get("content") or c.get("text"))
                               for c in chunk.get("choices") or []):
                            content_chunks += 1  # about a token each: the estimate when usage never comes
                yield event + b"\n\n"
        if usage is None:
            status, outcome, reason = 502, "error", "stream ended without usage"
    except httpx.HTTPError as exc:
        status, outcome, reason = 502, "error", f"engine stream broke: {type(exc).__name__}"
        error = {"error": {"message": "The engine's stream broke off; the answer is incomplete.",
                           "type": "api_error", "param": None, "code": "engine_stream_broken"}}
        yield b"data: " + json.dumps(error).encode() + b"\n\n"
    finally:
        await upstream.aclose()
        estimated = usage is None
        if usage is None:
            usage = (prompt_estimate, content_chunks)
        await _finish(gateway, decision, usage[0] + usage[1])
        meter.done(status, outcome, usage=usage, reason=reason, estimated=estimated)


class _Meter:
    def __init__(self, gateway: Any, ctx: KeyContext, target: Target, endpoint: str, started: float,
                 stream: bool) -> None:
        self.gateway, self.ctx, self.target, self.endpoint = gateway, ctx, target, endpoint
        self.started, self.stream = started, stream
        self.prompt: Any = None

    def done(self, status: int, outcome: str, *, usage: tuple[int, int] | None = None, reason: str | None = None,
             estimated: bool = False) -> None:
        tokens_in, tokens_out = usage or (0, 0)
        self.gateway.recorder.add(Call(
            key_pk=self.ctx.key_pk, key_id=self.ctx.key_id, user=self.ctx.subject.name or "?",
            repo_pk=self.target.repo_pk, repo=self.target.repo_id, endpoint=self.endpoint, status=status,
            outcome=outcome, prompt_tokens=tokens_in, completion_tokens=tokens_out,
            latency_ms=(time.perf_counter() - self.started) * 1000, stream=self.stream, reason=reason,
            estimated=estimated, prompt=self.prompt))


# ---------------------------------------------------------------------------------------------
# Usage, for releasers and key holders (a token, not an API key)


def _usage_rows(services: Services, subject: Subject, repo_id: str | None, days: int) -> list[dict[str, Any]]:
    from datetime import timedelta

    from releasehub.gateway.models import UsageDaily

    since = utcnow().date() - timedelta(days=days - 1)
    with services.db.session() as session:
        query = (select(UsageDaily, ApiKey.key_id, ApiKey.user_id, Repo)
                 .join(ApiKey, ApiKey.id == UsageDaily.key_pk).join(Repo, Repo.id == UsageDaily.repo_id)
                 .where(UsageDaily.day >= since).order_by(UsageDaily.day, Repo.id, ApiKey.key_id))
        if repo_id is not None:
            namespace, _, name = repo_id.partition("/")
            query = query.where(Repo.namespace == namespace, Repo.name == name)
        out = []
        admin_of: dict[int, bool] = {}
        for usage, key_id, user_id, repo in session.execute(query).tuples():
            if repo.id not in admin_of:
                decision = decide(subject, access_service.repo_policy(repo), Permission.REPO_ADMIN, utcnow())
                admin_of[repo.id] = decision.allowed
            if not admin_of[repo.id] and user_id != subject.user_id:
                continue  # a releaser sees every key of their repos; anyone else only their own keys
            out.append({"day": usage.day.isoformat(), "repo": repo.repo_id, "key": key_id,
                        "requests": usage.requests, "refused": usage.refused, "errors": usage.errors,
                        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens})
        return out


def _usage_route() -> None:
    from fastapi import Query

    from releasehub.hubapi.deps import requires

    @router.get("/api/gateway/usage")
    async def gateway_usage(request: Request, repo: str | None = Query(None), days: int = Query(30, ge=1, le=366),
                            subject: Subject = Depends(requires(Permission.ACCOUNT_READ))) -> list[dict[str, Any]]:
        """Daily usage per repo and key: all keys of repos you administer, and your own keys elsewhere."""
        return await run_in_threadpool(_usage_rows, _services(request), subject, repo, days)


_usage_route()
