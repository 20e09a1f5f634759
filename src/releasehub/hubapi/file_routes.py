"""File downloads: `/{namespace}/{name}/resolve/{revision}/{path}` with the Hub's headers.

Local blobs are served from their file with `FileResponse`, which hands the whole file to the
server (ASGI pathsend, sendfile in granian) and answers Range requests with 206.
"""

from __future__ import annotations

import mimetypes
from urllib.parse import quote

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response, StreamingResponse

from releasehub.access import Permission
from releasehub.hubapi.deps import RepoContext, check, decode_segment, repo_access
from releasehub.repos import service as repos
from releasehub.repos.paths import validate_path

router = APIRouter(tags=["files"])


@router.api_route("/{namespace}/{name}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
def resolve(
    revision: str, path: str, ctx: RepoContext = Depends(repo_access(Permission.REPO_DOWNLOAD))
) -> Response:
    path = validate_path(decode_segment(path))
    commit = repos.resolve_revision(ctx.session, ctx.repo, decode_segment(revision))
    check(ctx.subject, ctx.repo, Permission.REPO_DOWNLOAD, path)
    state = repos.get_file(ctx.session, commit, path)
    etag = f'"{state.sha256 if state.lfs else state.git_oid}"'
    filename = path.rsplit("/", 1)[-1]
    headers = {
        "X-Repo-Commit": commit.oid,
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}",
        "Cache-Control": "private, max-age=0, must-revalidate" if ctx.repo.private else "public, max-age=0",
    }
    if state.lfs:
        headers["X-Linked-Etag"] = etag
        headers["X-Linked-Size"] = str(state.size)
    media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    store = ctx.services.store
    local = store.local_path(state.sha256)
    if local is not None:
        return FileResponse(local, headers=headers, media_type=media_type)
    handle = store.open(state.sha256)
    headers["Content-Length"] = str(state.size)
    return StreamingResponse(iter(lambda: handle.read(1024 * 1024), b""), headers=headers, media_type=media_type)
