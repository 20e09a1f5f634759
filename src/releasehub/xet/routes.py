"""The Xet routes: CAS tokens on the Hub API, and the CAS API itself (served by this app).

Token routes are decided like every repo route (`repo_access`: write for the write token,
download for the read token). Each CAS route declares `Permission.XET_CAS` through a dependency
that checks the CAS token (`tokens.verify`): signed, unexpired, its direction; the xorb range
route, fetched without a token, checks its link's signature instead (`tokens.verify_link`).

Downloads (`downloads.py` decides and shapes them): `GET /v2/reconstructions/{hash}`, which the
client asks first, and `/v1/...`, its fallback; both are recorded as one `file.downloaded` audit
event. `GET /v1/xorb-ranges/{xorb}` serves the bytes a link signs: one range (200 or 206), or
several in one `multipart/byteranges` answer (RFC 9110 section 14.6), as the v2 client's
multi-range fetching asks.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from releasehub.access import Permission
from releasehub.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, RangeNotSatisfiable, ReleasehubError
from releasehub.hubapi.deps import RepoContext, client_ip, get_services, repo_access
from releasehub.repos import service as repos
from releasehub.services import Services
from releasehub.xet import downloads, service, tokens
from releasehub.xet.hashing import hash_from_hex
from releasehub.xet.tokens import READ, WRITE, CasGrant

log = logging.getLogger("releasehub.xet")
router = APIRouter(tags=["xet"])

_HASH = re.compile(r"^[0-9a-f]{64}$")
WRITE_BATCH = 4 * 1024 * 1024
SESSION_HEADER = "x-xet-session-id"  # the client's upload session, on every CAS request


# ---------------------------------------------------------------- tokens (Hub API)


def _token_answer(request: Request, ctx: RepoContext, direction: str, create_pr: str | None,
                  commit: str = "") -> Response:
    if create_pr not in (None, "0", "false"):
        raise BadRequest("Pull requests are not supported; upload to a branch instead.")
    settings = ctx.services.settings
    token, grant = tokens.issue(ctx.services.signing_key, ctx.repo.id, ctx.subject.user_id or 0, direction,
                                settings.xet_token_ttl_seconds, commit=commit)
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
    # (gated without a grant, hidden) got its refusal there and no token. The token carries the
    # commit the revision names now (the client asks with the commit of its HEAD), only so that
    # the audit log can name the downloads' revision; an unknown revision names none.
    try:
        commit = repos.resolve_revision(ctx.session, ctx.repo, revision).oid
    except NotFound:
        commit = ""
    return _token_answer(request, ctx, READ, create_pr, commit)


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
    # Its place in the session's assembly, taken as the request begins: the order the client sent them.
    ticket = services.assemblies.ticket(services.store, services.settings.max_file_bytes, grant.repo_id,
                                        grant.user_id, request.headers.get(SESSION_HEADER))
    try:
        with os.fdopen(fd, "wb") as handle:
            received = 0
            # The pieces as they arrived, written in batches by a worker thread: large pieces go
            # from the buffered writer to the file without being joined or copied first.
            pending: list[bytes] = []
            batched = 0
            async for piece in request.stream():
                received += len(piece)
                if received > limit:
                    raise PayloadTooLarge(f"A xorb may have at most {limit} bytes; nothing was stored.")
                pending.append(piece)
                batched += len(piece)
                if batched >= WRITE_BATCH:
                    await run_in_threadpool(handle.writelines, pending)
                    pending, batched = [], 0
            if pending:
                await run_in_threadpool(handle.writelines, pending)
        inserted, index = await run_in_threadpool(service.store_xorb, services, grant, oid, expected, spooled,
                                                   ticket)
        if ticket is not None:  # off the loop: a direct append's checkpoint waits for its hashing
            await run_in_threadpool(ticket.ready, oid, index)
    finally:
        if ticket is not None:
            ticket.failed()  # unless it was ready: a refused or broken-off xorb leaves a gap
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
        result = await run_in_threadpool(service.register_shard, services, grant, bytes(body),
                                         request.headers.get(SESSION_HEADER))
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


def _reconstruction(request: Request, oid: str, grant: CasGrant, services: Services, version: int) -> dict[str, Any]:
    _hash(oid)
    body, event = downloads.reconstruction(services, grant, oid, request.headers.get("range"),
                                           _cas_url(request, services), version, client_ip(request))
    recorder = getattr(request.app.state, "download_recorder", None)
    if recorder is not None:
        recorder.add(event)  # one event per answer, as for an LFS GET; the xorb ranges are not counted
    return body


@router.get("/v2/reconstructions/{oid}")
def get_reconstruction_v2(
    request: Request, oid: str, grant: CasGrant = Depends(cas_read), services: Services = Depends(get_services),
) -> dict[str, Any]:
    """The file's terms and, per xorb, one signed URL over the merged byte ranges of its chunks that
    the file uses (`xorbs`), only for a file of the token's repo that its user may download now
    (otherwise 404, as for an unknown hash). The client asks this first."""
    return _reconstruction(request, oid, grant, services, 2)


@router.get("/v1/reconstructions/{oid}")
def get_reconstruction(
    request: Request, oid: str, grant: CasGrant = Depends(cas_read), services: Services = Depends(get_services),
) -> dict[str, Any]:
    """The file's terms and one signed xorb range URL per term (`fetch_info`), decided as v2: the
    client's fallback when v2 answers 404."""
    return _reconstruction(request, oid, grant, services, 1)


def _outside() -> Forbidden:
    return Forbidden("This link is not signed for those bytes; ask for the file's reconstruction again.")


def _wanted_spans(header: str | None, link: tokens.RangeLink, total: int) -> tuple[list[tokens.Span], bool]:
    """The inclusive byte ranges to send, and whether the client named them (206) or took the
    link's whole set (200 for one range). 416 when a range starts past the xorb's end; 403 for
    any byte outside the signed ranges, or a Range this route does not read (suffix, malformed)."""
    if not header:
        return list(link.spans), False
    if not header.startswith("bytes="):
        raise _outside()
    wanted: list[tokens.Span] = []
    for piece in header[6:].split(","):
        first, sep, last = piece.strip().partition("-")
        if not sep or not first.isdigit() or not (last.isdigit() or last == ""):
            raise _outside()
        start = int(first)
        if start >= total:
            raise RangeNotSatisfiable(f"The range starts at byte {start}; the xorb has {total} bytes.", size=total)
        if last == "":  # open-ended: to the end of the signed range that holds its start
            end = next((b for a, b in link.spans if a <= start <= b), start - 1)
        else:
            end = int(last)
        end = min(end, total - 1)
        if end < start or not link.covers(start, end):
            raise _outside()
        wanted.append((start, end))
    return wanted, True


def _read_spans(services: Services, oid: str, spans: list[tokens.Span]) -> Iterator[tuple[int, bytes]]:
    """(span index, bytes) pieces of the xorb, span after span, 1 MiB at a time."""
    with services.store.open_object(service.XORBS, oid) as handle:
        for number, (start, end) in enumerate(spans):
            handle.seek(start)
            left = end - start + 1
            while left > 0:
                piece = handle.read(min(left, 1024 * 1024))
                if not piece:
                    return
                left -= len(piece)
                yield number, piece


@router.get("/v1/xorb-ranges/{oid}")
def get_xorb_range(
    request: Request, oid: str, link: tokens.RangeLink = Depends(range_link),
    services: Services = Depends(get_services),
) -> Response:
    """The bytes a link signs of a stored xorb: without a Range, all of them (200 for one range,
    multipart for several); with a Range of one or more ranges inside the signed ones, those (206,
    multipart/byteranges for several). Bytes outside the signed ranges answer 403, a range past
    the xorb's end 416 (`Content-Range: bytes */size`)."""
    _hash(oid)
    total = services.store.object_size(service.XORBS, oid)
    if total is None:
        raise NotFound("No such xorb.")
    wanted, asked = _wanted_spans(request.headers.get("range"), link, total)
    wanted = [(start, min(end, total - 1)) for start, end in wanted if start < total]
    if not wanted:
        raise _outside()
    downloads.log.info("xet xorb range served: %s bytes %s", oid, ",".join(f"{a}-{b}" for a, b in wanted))
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-store"}
    if len(wanted) == 1:
        start, end = wanted[0]
        headers["Content-Length"] = str(end - start + 1)
        if asked:
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        pieces = (piece for _, piece in _read_spans(services, oid, wanted))
        return StreamingResponse(pieces, status_code=206 if asked else 200, headers=headers,
                                 media_type="application/octet-stream")
    # Several ranges: one multipart/byteranges body, each part with its own Content-Range.
    boundary = secrets.token_hex(16)
    heads = [(f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
              f"Content-Range: bytes {start}-{end}/{total}\r\n\r\n").encode() for start, end in wanted]
    closing = f"\r\n--{boundary}--\r\n".encode()
    length = sum(len(h) for h in heads) + sum(end - start + 1 for start, end in wanted) \
        + 2 * (len(wanted) - 1) + len(closing)

    def body() -> Iterator[bytes]:
        current = -1
        for number, piece in _read_spans(services, oid, wanted):
            if number != current:
                yield (b"\r\n" if number else b"") + heads[number]
                current = number
            yield piece
        yield closing

    headers["Content-Length"] = str(length)
    return StreamingResponse(body(), status_code=206, headers=headers,
                             media_type=f"multipart/byteranges; boundary={boundary}")
