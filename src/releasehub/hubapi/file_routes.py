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

from releasehub.access import Permission
from releasehub.hubapi.deps import decode_segment, load_repo_checked, subject_from_header
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
    stat: os.stat_result | None


def _lookup(services: Services, authorization: str | None, namespace: str, name: str, revision: str,
            path: str) -> ResolvedFile:
    with services.db.session() as session:
        subject = subject_from_header(session, authorization)
        repo = load_repo_checked(session, subject, namespace, name, Permission.REPO_DOWNLOAD, path)
        commit = repos.resolve_revision(session, repo, revision)
        state = repos.get_file(session, commit, path)
        private = repo.private
    local = services.store.local_path(state.sha256)
    return ResolvedFile(path, commit.oid, state, private, local, os.stat(local) if local else None)


async def file_access(request: Request, namespace: str, name: str, revision: str, path: str) -> ResolvedFile:
    path = validate_path(decode_segment(path))
    return await run_in_threadpool(
        _lookup, request.app.state.services, request.headers.get("authorization"), namespace, name,
        decode_segment(revision), path,
    )


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
        return FileResponse(found.local, headers=headers, media_type=media_type, stat_result=found.stat)
    store: Services = request.app.state.services
    handle = store.store.open(found.state.sha256)
    headers["Content-Length"] = str(found.state.size)
    return StreamingResponse(iter(lambda: handle.read(1024 * 1024), b""), headers=headers, media_type=media_type)
