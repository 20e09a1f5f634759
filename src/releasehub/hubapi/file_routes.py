"""File downloads: `/{namespace}/{name}/resolve/{revision}/{path}` with the Hub's headers.

This is the hottest route (every `hf_hub_download` starts with a HEAD here), so all of its
database work — token, repo, access decision, revision, file entry — happens in one session
in one worker-thread call. Local blobs are served with `FileResponse`, which hands the file
to the server (ASGI pathsend: granian sends it without a Python copy loop) and answers Range
requests with 206; HEAD answers from the database without touching the file.
"""

from __future__ import annotations

import contextlib

import mimetypes
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from releasehub.access import Grant, Permission, RepoPolicy, decide
from releasehub.access import service as access_service
from releasehub.accounts import service as accounts
from releasehub.accounts.service import ANONYMOUS, Subject
from releasehub.auditlog import EventData
from releasehub.db import VersionedCache, utcnow
from releasehub.errors import RangeNotSatisfiable
from releasehub.hubapi.deps import decode_segment, raise_denied, repo_context, subject_from_header
from releasehub.repos import service as repos
from releasehub.repos.paths import validate_path
from releasehub.repos.service import FileState
from releasehub.services import Services
from releasehub.xet import downloads as xet_downloads

router = APIRouter(tags=["files"])


@dataclass(frozen=True)
class ResolvedFile:
    path: str
    commit_oid: str
    state: FileState
    private: bool
    local: Path | None
    repo_id: str
    actor: str | None
    xet_hash: str | None = None  # uploaded through Xet to this repo: the answer advertises Xet


def _file_decision(subject: Subject, policy: RepoPolicy, grant: Grant | None, path: str, commit_oid: str,
                   exists: bool) -> None:
    """Repo visibility first, then existence, then the gate: a hidden file answers exactly as a missing one."""
    decision = decide(subject, policy, Permission.REPO_DOWNLOAD, utcnow(), path, grant)
    if decision.error_code == "RepoNotFound":
        raise_denied(decision)
    if not exists or decision.hidden:
        raise repos.missing_file(path, commit_oid)
    raise_denied(decision)


# The rows of the branch lookups (token → subject, repo/ref/file/grant), kept while the database's
# change signal stays the same (`Database.data_version`): a token revoked, a repo made private, a
# branch moved or a grant changed anywhere clears it from the next request on. The decision itself
# (expiry, staged releases) is made again on every call.
_rows = VersionedCache()
_MISSING = ("missing",)


class _NeedsDatabase(Exception):
    """A lookup that only the database can answer, made on the event loop: it moves to a worker
    thread."""


def _lookup(services: Services, version: int | None, cache_only: bool, authorization: str | None,
            namespace: str, name: str, revision: str, path: str) -> ResolvedFile:
    db = services.db
    connection: Connection | None = None

    def connect() -> Connection:
        nonlocal connection
        if cache_only:
            raise _NeedsDatabase
        if connection is None:
            connection = db.engine.connect()
        return connection

    try:
        def token_rows(secret_hash: str) -> Sequence[Any]:
            key = ("token", secret_hash)
            rows = _rows.get(version, key)
            if rows is None:
                rows = accounts.token_rows(connect(), secret_hash)
                _rows.put(version, key, rows)
            return rows  # type: ignore[no-any-return]

        subject = subject_from_header(None, authorization, rows_for=token_rows)
        key = ("file", namespace, name, revision, path, subject.user_id)
        cached = _rows.get(version, key)
        if cached is None:
            cached = repos.locate_on_branch(connect(), namespace, name, revision, path, subject.user_id) or _MISSING
            _rows.put(version, key, cached)
        found = None if cached is _MISSING else cached
        if found is not None:
            rules = access_service.cached_rules(found.repo_id, found.policy_version)
            if rules is None:
                rules = access_service.rules_from_raw(found.repo_id, found.policy_version,
                                                      repos.policy_json(connect(), found.repo_id))
    finally:
        if connection is not None:
            connection.close()
    if found is None or found.commit_oid is None:
        # No such repo, or the revision is a tag or a commit sha: the general path.
        if cache_only:
            raise _NeedsDatabase
        return _lookup_any_revision(services, subject, namespace, name, revision, path)
    assert rules is not None  # set above whenever found is not None
    policy = RepoPolicy(f"{namespace}/{name}", namespace, found.visibility, found.gated, rules)
    grant = Grant(*found.grant) if found.grant is not None else None
    _file_decision(subject, policy, grant, path, found.commit_oid, found.file is not None)
    assert found.file is not None
    return _resolved(services, path, found.commit_oid, found.file, policy, subject, found.xet_hash)


def _lookup_any_revision(services: Services, subject: Subject, namespace: str, name: str, revision: str,
                         path: str) -> ResolvedFile:
    with services.db.session() as session:
        ctx = repo_context(session, subject, services, namespace, name, Permission.REPO_READ)
        commit = repos.resolve_revision(session, ctx.repo, revision)
        state = repos.find_file(session, commit, path)
        _file_decision(subject, ctx.policy, ctx.grant, path, commit.oid, state is not None)
        assert state is not None
        xet_hash = xet_downloads.xet_hash_of(session, ctx.repo.id, state.sha256) if state.lfs else None
        return _resolved(services, path, commit.oid, state, ctx.policy, subject, xet_hash)


def _resolved(services: Services, path: str, commit_oid: str, state: FileState, policy: RepoPolicy,
              subject: Subject, xet_hash: str | None = None) -> ResolvedFile:
    local = services.store.local_path(state.sha256)
    # Shared caches may keep only what anyone may read anonymously, now: not gated, staged,
    # tiered, hosted-only or private content, whoever asked for it.
    private = not decide(ANONYMOUS, policy, Permission.REPO_DOWNLOAD, utcnow(), path, None).allowed
    return ResolvedFile(path, commit_oid, state, private, local, policy.repo_id, subject.name, xet_hash)


async def file_access(request: Request) -> ResolvedFile:
    # Path parameters are read from the request rather than declared, which saves FastAPI a
    # validation pass on the busiest route.
    params = request.path_params
    path = validate_path(decode_segment(params["path"]))
    services: Services = request.app.state.services
    args = (request.headers.get("authorization"), params["namespace"], params["name"],
            decode_segment(params["revision"]), path)
    db = services.db
    if db.inline_reads:
        # SQLite in WAL mode: two indexed reads that never wait for a writer take less time
        # than the hop to a worker thread.
        return _lookup(services, db.data_version(), False, *args)
    # PostgreSQL: the change signal is one round trip on the loop's own connection; when the
    # cache holds the rows, that is all the database sees of this request.
    version = await db.data_version_async()
    if version is not None:
        with contextlib.suppress(_NeedsDatabase):
            return _lookup(services, version, True, *args)
    return await run_in_threadpool(_lookup, services, version, False, *args)


file_access.permission = Permission.REPO_DOWNLOAD  # type: ignore[attr-defined]
file_access.checks_repo = True  # type: ignore[attr-defined]


def _headers(request: Request, found: ResolvedFile) -> dict[str, str]:
    state = found.state
    etag = f'"{state.sha256 if state.lfs else state.git_oid}"'
    headers = {
        "X-Repo-Commit": found.commit_oid,
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(found.path.rsplit('/', 1)[-1])}",
        "Cache-Control": "private, max-age=0, must-revalidate" if found.private else "public, max-age=0",
    }
    if state.lfs:
        headers["X-Linked-Etag"] = etag
        headers["X-Linked-Size"] = str(state.size)
    if found.xet_hash is not None:
        # Only here, after `file_access` decided: the client then downloads through Xet, asking the
        # read-token route (decided again) for a CAS token.
        settings = request.app.state.services.settings
        base = (settings.public_url or str(request.base_url)).rstrip("/")
        headers["X-Xet-Hash"] = found.xet_hash
        headers["Link"] = f'<{base}/api/models/{found.repo_id}/xet-read-token/{found.commit_oid}>; rel="xet-auth"'
    return headers


# `file_access` reads the path parameters from the request instead of declaring them, so FastAPI
# would leave them out of the OpenAPI document; they are declared there by hand, as it would have.
_PATH_PARAMETERS: dict[str, object] = {"parameters": [
    {"name": name, "in": "path", "required": True, "schema": {"type": "string", "title": name.capitalize()}}
    for name in ("namespace", "name", "revision", "path")
]}


@router.head("/{namespace}/{name}/resolve/{revision}/{path:path}", operation_id="resolve_head",
             openapi_extra=_PATH_PARAMETERS)
@router.get("/{namespace}/{name}/resolve/{revision}/{path:path}", operation_id="resolve_get",
            openapi_extra=_PATH_PARAMETERS)
async def resolve(request: Request, found: ResolvedFile = Depends(file_access)) -> Response:
    headers = _headers(request, found)
    media_type = mimetypes.guess_type(found.path)[0] or "application/octet-stream"
    services: Services = request.app.state.services
    settings = services.settings
    if found.state.lfs and not settings.storage_proxy and request.method == "GET":
        # Only now, after `file_access` decided: a short-lived presigned URL of the object, with the
        # Hub's headers on the redirect itself. Signing is local: the store is not called. A HEAD
        # answers 200 from the database, so that the client's download is a GET here (recorded in
        # the audit log) before it goes to the store.
        location = services.store.download_url(found.state.sha256, settings.download_url_ttl_seconds,
                                               found.path.rsplit("/", 1)[-1], media_type)
        if location is not None:
            _record_download(request, found)
            headers["Location"] = location
            headers["Cache-Control"] = "private, no-store"  # the URL expires; never cache the redirect
            return Response(status_code=302, headers=headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(found.state.size)
        return Response(headers=headers, media_type=media_type)
    _record_download(request, found)
    if found.local is not None:
        if settings.accel_redirect_prefix:
            # Behind the documented nginx front: nginx sends the file from its internal location
            # (sendfile, Range), re-adding these headers from the upstream answer.
            sha = found.state.sha256
            headers["X-Accel-Redirect"] = f"{settings.accel_redirect_prefix.rstrip('/')}/{sha[:2]}/{sha[2:4]}/{sha}"
            headers["X-Accel-Buffering"] = "no"
            headers.pop("Accept-Ranges", None)  # nginx adds its own for the file it sends
            return Response(headers=headers, media_type=media_type)
        # The blob is stat-ed here, for GET only: a HEAD answers from the database.
        return FileResponse(found.local, headers=headers, media_type=media_type, stat_result=os.stat(found.local))
    return _stream(services, found, headers, media_type, request.headers.get("range"))


def _single_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive range of a single `bytes=` Range header; None for the whole file (no header,
    several ranges, or one that cannot be parsed, which RFC 9110 lets a server ignore).
    RangeNotSatisfiable when it starts past the end."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    if not (first.isdigit() or first == "") or not (last.isdigit() or last == "") or first == last == "":
        return None
    if first == "":
        length = int(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable(f"The file has {size} bytes.", size=size)
        return max(0, size - length), size - 1
    start, end = int(first), int(last) if last else size - 1
    if start >= size:
        raise RangeNotSatisfiable(f"The range starts at byte {start}; the file has {size} bytes.", size=size)
    if end < start:
        return None
    return start, min(end, size - 1)


def _stream(services: Services, found: ResolvedFile, headers: dict[str, str], media_type: str,
            range_header: str | None) -> Response:
    """The server sends the bytes of a store without local files (the proxy setting), honouring Range."""
    size = found.state.size
    wanted = _single_range(range_header, size)
    start, end = wanted if wanted is not None else (0, size - 1)
    status = 206 if wanted is not None else 200
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(max(0, end - start + 1))

    def body() -> Iterator[bytes]:
        with services.store.open(found.state.sha256) as handle:
            handle.seek(start)
            left = end - start + 1
            while left > 0:
                piece = handle.read(min(left, 1024 * 1024))
                if not piece:
                    return
                left -= len(piece)
                yield piece

    return StreamingResponse(body(), status_code=status, headers=headers, media_type=media_type)


def _range_length(header: str | None, size: int) -> int:
    """Bytes a Range header asks for (a single range; the whole file otherwise)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return size
    start, _, end = header[6:].partition("-")
    try:
        if not start:
            return min(int(end), size)
        first = int(start)
        last = min(int(end), size - 1) if end else size - 1
    except ValueError:
        return size
    return max(0, last - first + 1)


def _record_download(request: Request, found: ResolvedFile) -> None:
    """Every GET that hands out content is an audit event (written in batches off the request path)."""
    recorder = getattr(request.app.state, "download_recorder", None)
    if recorder is None:
        return
    range_header = request.headers.get("range")
    recorder.add(EventData(
        action="file.downloaded", actor=found.actor, repo=found.repo_id, revision=found.commit_oid,
        path=found.path, bytes=_range_length(range_header, found.state.size),
        ip=request.client.host if request.client else None,
        details={"range": range_header} if range_header else None, at=utcnow(),
    ))
