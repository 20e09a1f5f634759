"""File downloads: `/{namespace}/{name}/resolve/{revision}/{path}` with the Hub's headers.

This is the hottest route (every `hf_hub_download` starts with a HEAD here), so all of its
database work — token, repo, access decision, revision, file entry — happens in one session
in one worker-thread call. Local blobs are served with `FileResponse`, which hands the file
to the server (ASGI pathsend: granian sends it without a Python copy loop) and answers Range
requests with 206; HEAD answers from the database without touching the file.
"""

from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from releasehub.access import Permission, RepoPolicy
from releasehub.accounts.service import Subject
from releasehub.errors import EntryNotFound
from releasehub.hubapi.deps import check_policy, decode_segment, load_repo_checked, subject_from_header
from releasehub.repos import service as repos
from releasehub.repos.paths import validate_path
from releasehub.repos.service import FileState
from releasehub.services import Services

router = APIRouter(tags=["files"])


@dataclass(frozen=True)
class ResolvedFile:
    path: str
    commit_oid: str
    state: FileState
    private: bool
    local: Path | None


def _lookup(services: Services, authorization: str | None, namespace: str, name: str, revision: str,
            path: str) -> ResolvedFile:
    with services.db.engine.connect() as connection:
        subject = subject_from_header(connection, authorization)
        found = repos.locate_on_branch(connection, namespace, name, revision, path)
        if found is not None:
            # Access first: a file's existence is itself something to hide.
            check_policy(subject, RepoPolicy(f"{namespace}/{name}", namespace, found.private),
                         Permission.REPO_DOWNLOAD, path)
    if found is None or found.commit_oid is None:
        # No such repo, or the revision is a tag or a commit sha: the general path.
        return _lookup_any_revision(services, subject, namespace, name, revision, path)
    if found.file is None:
        raise EntryNotFound(f"{path} does not exist at revision {found.commit_oid[:12]} of this repository.")
    return _resolved(services, path, found.commit_oid, found.file, found.private)


def _lookup_any_revision(services: Services, subject: Subject, namespace: str, name: str, revision: str,
                         path: str) -> ResolvedFile:
    with services.db.session() as session:
        repo = load_repo_checked(session, subject, namespace, name, Permission.REPO_DOWNLOAD, path)
        commit = repos.resolve_revision(session, repo, revision)
        state = repos.get_file(session, commit, path)
        return _resolved(services, path, commit.oid, state, repo.private)


def _resolved(services: Services, path: str, commit_oid: str, state: FileState, private: bool) -> ResolvedFile:
    local = services.store.local_path(state.sha256)
    return ResolvedFile(path, commit_oid, state, private, local)


async def file_access(request: Request) -> ResolvedFile:
    # Path parameters are read from the request rather than declared, which saves FastAPI a
    # validation pass on the busiest route.
    params = request.path_params
    path = validate_path(decode_segment(params["path"]))
    services: Services = request.app.state.services
    args = (services, request.headers.get("authorization"), params["namespace"], params["name"],
            decode_segment(params["revision"]), path)
    if services.db.inline_reads:
        # SQLite in WAL mode: two indexed reads that never wait for a writer take less time
        # than the hop to a worker thread.
        return _lookup(*args)
    return await run_in_threadpool(_lookup, *args)


file_access.permission = Permission.REPO_DOWNLOAD  # type: ignore[attr-defined]
file_access.checks_repo = True  # type: ignore[attr-defined]


def _headers(found: ResolvedFile) -> dict[str, str]:
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
    return headers


@router.head("/{namespace}/{name}/resolve/{revision}/{path:path}", operation_id="resolve_head")
@router.get("/{namespace}/{name}/resolve/{revision}/{path:path}", operation_id="resolve_get")
async def resolve(request: Request, found: ResolvedFile = Depends(file_access)) -> Response:
    headers = _headers(found)
    media_type = mimetypes.guess_type(found.path)[0] or "application/octet-stream"
    if request.method == "HEAD":
        headers["Content-Length"] = str(found.state.size)
        return Response(headers=headers, media_type=media_type)
    if found.local is not None:
        # The blob is stat-ed here, for GET only: a HEAD answers from the database.
        return FileResponse(found.local, headers=headers, media_type=media_type, stat_result=os.stat(found.local))
    store: Services = request.app.state.services
    handle = store.store.open(found.state.sha256)
    headers["Content-Length"] = str(found.state.size)
    return StreamingResponse(iter(lambda: handle.read(1024 * 1024), b""), headers=headers, media_type=media_type)
