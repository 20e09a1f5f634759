"""The OpenAI-compatible API's routes: `/v1/models`, `/v1/chat/completions`, `/v1/completions`,
and the usage report `/api/gateway/usage`.

The two completion routes are declared here (for the API description and the permission walk),
and `GatewayFastPath` hands their POSTs straight to `proxy.handle` without routing; the calls'
logic lives in `proxy` and `lookup`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from releasehub.access import Permission, decide
from releasehub.access import service as access_service
from releasehub.accounts.subject import Subject
from releasehub.db import as_utc, utcnow
from releasehub.repos.models import Repo
from releasehub.services import Services

from releasehub.hubapi.deps import decode_segment

from .errors import GatewayError, gateway_error  # noqa: F401  (re-exported for the app)
from .lookup import load_key
from .models import ApiKey, HostedModel
from .proxy import ENDPOINTS, bearer, handle

router = APIRouter(tags=["gateway"])


class GatewayFastPath:
    """Hands POSTs of `/v1/chat/completions` and `/v1/completions` straight to `proxy.handle`.

    They are the whole traffic of a hosted release, and FastAPI's routing, dependency solving and
    response objects cost more than the gateway's own work. The handler is the one the declared
    routes run, with the same key check (`gateway_caller`'s GATEWAY_CALL) and errors.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = ENDPOINTS.get(scope["path"])
            if endpoint is not None:
                await handle(scope, receive, send, endpoint)
                return
        await self.app(scope, receive, send)


class _CallResponse(Response):
    """The response of a completion route: the whole call, run on ASGI by `proxy.handle`."""

    def __init__(self, endpoint: str) -> None:  # noqa: D107 (no body: handle sends everything)
        self.endpoint = endpoint
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await handle(scope, receive, send, self.endpoint)


def _services(request: Request) -> Services:
    return request.app.state.services


async def gateway_caller(request: Request) -> str:
    """The API key secret of the request (401 in OpenAI's shape without one); checked with the repo."""
    return bearer(request.headers.get("authorization"))


gateway_caller.permission = Permission.GATEWAY_CALL  # type: ignore[attr-defined]


def _callable_models(services: Services, secret: str) -> list[dict[str, Any]]:
    """The models a key may call: its repos that are hosted, switched on and readable by its user."""
    out = []
    with services.db.engine.connect() as conn:
        ctx = load_key(conn, secret, with_repos=True)
    with services.db.session() as session:
        rows = session.execute(select(Repo, HostedModel).join(HostedModel, HostedModel.repo_id == Repo.id)
                               .where(Repo.id.in_(ctx.repo_pks), HostedModel.enabled.is_(True))
                               .order_by(Repo.namespace, Repo.name)).all()
        for repo, hosted in rows:
            if decide(ctx.subject, access_service.repo_policy(repo), Permission.REPO_READ, utcnow()).allowed:
                created = as_utc(hosted.created_at)
                assert created is not None  # created_at is NOT NULL
                out.append({"id": repo.repo_id, "object": "model",
                            "created": int(created.timestamp()), "owned_by": repo.namespace})
    return out


@router.get("/v1/models")
async def list_models(request: Request, secret: str = Depends(gateway_caller)) -> dict[str, Any]:
    """The models this key may call (OpenAI's model list)."""
    return {"object": "list", "data": await run_in_threadpool(_callable_models, _services(request), secret)}


@router.get("/v1/models/{model:path}")
async def retrieve_model(model: str, request: Request, secret: str = Depends(gateway_caller)) -> dict[str, Any]:
    """One model this key may call (`client.models.retrieve("lab/model")`, which sends the slash encoded);
    404 as for a model that does not exist otherwise."""
    wanted = decode_segment(model)
    for callable_model in await run_in_threadpool(_callable_models, _services(request), secret):
        if callable_model["id"] == wanted:
            return callable_model
    raise GatewayError(404, f"The model `{wanted}` does not exist or you do not have access to it.",
                       code="model_not_found", param="model")


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, secret: str = Depends(gateway_caller)) -> Response:
    """OpenAI's chat completions, streaming or not (served by `GatewayFastPath`)."""
    return _CallResponse("chat")


@router.post("/v1/completions")
async def completions(request: Request, secret: str = Depends(gateway_caller)) -> Response:
    """OpenAI's (legacy) completions, streaming or not (served by `GatewayFastPath`)."""
    return _CallResponse("completions")


# ---------------------------------------------------------------------------------------------
# Usage, for releasers and key holders (a token, not an API key)


def _usage_rows(services: Services, subject: Subject, repo_id: str | None, days: int) -> list[dict[str, Any]]:
    from datetime import timedelta

    from releasehub.gateway.models import UsageDaily

    from releasehub.accounts.models import User

    since = utcnow().date() - timedelta(days=days - 1)
    with services.db.session() as session:
        query = (select(UsageDaily, ApiKey.key_id, ApiKey.user_id, Repo, User.name)
                 .join(ApiKey, ApiKey.id == UsageDaily.key_pk).join(Repo, Repo.id == UsageDaily.repo_id)
                 .join(User, User.id == ApiKey.user_id)
                 .where(UsageDaily.day >= since).order_by(UsageDaily.day, Repo.id, ApiKey.key_id))
        if repo_id is not None:
            namespace, _, name = repo_id.partition("/")
            query = query.where(Repo.namespace == namespace, Repo.name == name)
        out = []
        admin_of: dict[int, bool] = {}
        for usage, key_id, user_id, repo, user_name in session.execute(query).tuples():
            if repo.id not in admin_of:
                decision = decide(subject, access_service.repo_policy(repo), Permission.REPO_ADMIN, utcnow())
                admin_of[repo.id] = decision.allowed
            if not admin_of[repo.id] and user_id != subject.user_id:
                continue  # a releaser sees every key of their repos; anyone else only their own keys
            out.append({"day": usage.day.isoformat(), "repo": repo.repo_id, "key": key_id, "user": user_name,
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
