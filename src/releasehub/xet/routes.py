"""The Xet routes: CAS tokens on the Hub API, and the CAS API itself (served by this app).

Token routes are decided like every repo route (`repo_access`: write for the write token,
download for the read token). Each CAS route declares `Permission.XET_CAS` through a dependency
that checks the CAS token (`tokens.verify`): signed, unexpired, its direction; the xorb range
route, fetched without a token, checks its link's signature instead (`tokens.verify_link`).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from releasehub.access import Permission
from releasehub.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, ReleasehubError
from releasehub.hubapi.deps import RepoContext, get_services, repo_access
from releasehub.services import Services
from releasehub.xet import downloads, service, tokens
from releasehub.xet.hashing import hash_from_hex
from releasehub.xet.tokens import READ, WRITE, CasGrant

log = logging.getLogger("releasehub.xet")
router = APIRouter(tags=["xet"])

_HASH = re.compile(r"^[0-9a-f]{64}$")
WRITE_BATCH = 4 * 1024 * 1024


# ---------------------------------------------------------------- tokens (Hub API)


def _token_answer(request: Request, ctx: RepoContext, direction: str, create_pr: str | None) -> Response:
    if create_pr not in (None, "0", "false"):
        raise BadRequest("Pull requests are not supported; upload to a branch instead.")
    settings = ctx.services.settings
    token, grant = tokens.issue(ctx.services.signing_key, ctx.repo.id, ctx.subject.user_id or 0, direction,
                                settings.xet_token_ttl_seconds)
    cas_url = _cas_url(request, ctx.services)
    body = {"accessToken": token, "exp": grant.expires, "casUrl": cas_url}
    headers = {"X-Xet-Cas-Url": cas_url, "X-Xet-Access-Token": token, "X-Xet-Token-Expiration": str(grant.expires),
               "Cache-Control": "no-store"}
    return JSONResponse(body, headers=headers)


@router.get("/api/models/{namespace}/{name}/xet-write-token/{revision}")
def xet_write_token(
    request: Request, revision: str, create_pr: str | None = Query(None),
    ctx: RepoContext = Depends(repo_access(Permission.REPO_WRITE)),
) -> Response:
    return _token_answer(request, ctx, WRITE, create_pr)


@router.get("/api/models/{namespace}/{name}/xet-read-token/{revision}")
def xet_read_token(
    request: Request, revision: str, create_pr: str | None = Query(None),
    ctx: RepoContext = Depends(repo_access(Permission.REPO_DOWNLOAD)),
) -> Response:
    # repo_access decided REPO_DOWNLOAD for the repo as a whole: a subject who may not download
    # (gated without a grant, hidden) got its refusal there and no token.
    return _token_answer(request, ctx, READ, create_pr)


# ---------------------------------------------------------------- CAS API


def _cas(direction: str | None) -> Callable[..., CasGrant]:
    def dependency(request: Request, services: Services = Depends(get_services)) -> CasGrant:
        return tokens.verify(services.signing_key, request.headers.get("authorization"), direction)

    dependency.permission = Permission.XET_CAS  # type: ignore[attr-defined]
    return dependency


cas_any = _cas(None)
cas_write = _cas(WRITE)
cas_read = _cas(READ)


def range_link(request: Request, oid: str, services: Services = Depends(get_services)) -> tokens.RangeLink:
    """A xorb range URL's own credential: its signature (one xorb, one byte range, unexpired)."""
    query = request.query_params
    return tokens.verify_link(services.signing_key, oid, query.get("bytes"), query.get("exp"), query.get("sig"))


range_link.permission = Permission.XET_CAS  # type: ignore[attr-defined]


def _cas_url(request: Request, services: Services) -> str:
    return (services.settings.public_url or str(request.base_url)).rstrip("/")


def _hash(value: str) -> bytes:
    if not _HASH.match(value):
        raise BadRequest("A Xet hash in a path is 64 lowercase hex digits.")
    return hash_from_hex(value)


def _declared_too_large(request: Request, limit: int, what: str) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"A {what} may have at most {limit} bytes.")


@router.get("/v1/chunks/default/{oid}")
@router.get("/v1/chunks/default-merkledb/{oid}")
def chunk_dedup(oid: str, grant: CasGrant = Depends(cas_any)) -> Response:
    """Global deduplication is not offered: 404 means "no known xorb holds this chunk", and the
    client uploads the chunk (its own shard cache still deduplicates its uploads)."""
    _hash(oid)
    raise NotFound("No deduplication information for this chunk.")


@router.post("/v1/xorb-grants/default/{oid}")
def xorb_grant(oid: str, grant: CasGrant = Depends(cas_write)) -> Response:
    """Direct-to-storage xorb grants are not offered; the client then POSTs the xorb itself."""
    raise NotFound("Xorb grants are not served; upload the xorb to /v1/xorbs/default/{hash}.")


@router.post("/v1/xorbs/default/{oid}")
async def upload_xorb(
    request: Request, oid: str, grant: CasGrant = Depends(cas_write), services: Services = Depends(get_services),
) -> dict[str, Any]:
    expected = _hash(oid)
    limit = services.settings.xet_max_xorb_bytes
    _declared_too_large(request, limit, "xorb")
    fd, name = tempfile.mkstemp(prefix="xorb-", dir=service.spool_dir(services))
    spooled = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            received = 0
            pending = bytearray()
            async for piece in request.stream():
                received += len(piece)
                if received > limit:
                    raise PayloadTooLarge(f"A xorb may have at most {limit} bytes; nothing was stored.")
                pending += piece
                if len(pending) >= WRITE_BATCH:
                    await run_in_threadpool(handle.write, bytes(pending))
                    pending.clear()
            if pending:
                await run_in_threadpool(handle.write, bytes(pending))
        inserted = await run_in_threadpool(service.store_xorb, services, grant, oid, expected, spooled)
    finally:
        spooled.unlink(missing_ok=True)
    return {"was_inserted": inserted}


@router.post("/v2/shards")
def upload_shard_v2(grant: CasGrant = Depends(cas_write)) -> Response:
    """The streaming shard upload is not served; the client falls back to /v1/shards on 404."""
    raise NotFound("Streaming shard uploads are not served; POST the shard to /v1/shards.")


@router.post("/v1/shards")
async def upload_shard(
    request: Request, grant: CasGrant = Depends(cas_write), services: Services = Depends(get_services),
) -> dict[str, Any]:
    limit = services.settings.xet_max_shard_bytes
    _declared_too_large(request, limit, "shard")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise PayloadTooLarge(f"A shard may have at most {limit} bytes; nothing was stored.")
    try:
        result = await run_in_threadpool(service.register_shard, services, grant, bytes(body))
    except ReleasehubError as exc:
        # The Xet client shows only the status: the server's log says why a shard was refused.
        log.info("shard refused (repo %s, user %s): %s", grant.repo_id, grant.user_id, exc.message)
        raise
    return {"result": result}


@router.post("/v1/telemetry")
def telemetry(grant: CasGrant = Depends(cas_any)) -> Response:
    """Accepted and ignored."""
    return Response(status_code=200)


# ---------------------------------------------------------------- downloads


@router.get("/v1/reconstructions/{oid}")
def get_reconstruction(
    request: Request, oid: str, grant: CasGrant = Depends(cas_read), services: Services = Depends(get_services),
) -> dict[str, Any]:
    """The file's terms and signed xorb range URLs, only for a file of the token's repo that its
    user may download now (otherwise 404, as for an unknown hash). v2 is not served: the client
    falls back to this route on its 404."""
    _hash(oid)
    return downloads.reconstruction(services, grant, oid, request.headers.get("range"), _cas_url(request, services))


@router.get("/v1/xorb-ranges/{oid}")
def get_xorb_range(
    request: Request, oid: str, link: tokens.RangeLink = Depends(range_link),
    services: Services = Depends(get_services),
) -> Response:
    """The bytes of one signed range of a stored xorb: the whole range (200), or a single Range
    inside it (206). Anything outside the signed range answers 403."""
    _hash(oid)
    total = services.store.object_size(service.XORBS, oid)
    if total is None:
        raise NotFound("No such xorb.")
    start, end = link.start, min(link.end, total - 1)
    status = 200
    header = request.headers.get("range")
    if header:
        first, _, last = header.removeprefix("bytes=").partition("-")
        if not header.startswith("bytes=") or not first.isdigit() or not (last.isdigit() or last == ""):
            raise Forbidden("This link serves one range of bytes inside the signed one.")
        wanted = (int(first), int(last) if last else end)
        if not start <= wanted[0] <= wanted[1] <= end:
            raise Forbidden("This link is not signed for those bytes; ask for the file's reconstruction again.")
        start, end, status = wanted[0], wanted[1], 206
    if start > end:
        raise Forbidden("This link is not signed for those bytes; ask for the file's reconstruction again.")
    downloads.log.info("xet xorb range served: %s bytes %d-%d", oid, start, end)

    def body() -> Any:
        with services.store.open_object(service.XORBS, oid) as handle:
            handle.seek(start)
            left = end - start + 1
            while left > 0:
                piece = handle.read(min(left, 1024 * 1024))
                if not piece:
                    return
                left -= len(piece)
                yield piece

    headers = {"Content-Length": str(end - start + 1), "Accept-Ranges": "bytes", "Cache-Control": "no-store"}
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end}/{total}"
    return StreamingResponse(body(), status_code=status, headers=headers, media_type="application/octet-stream")
