"""Cross-repo copies: the Hub's `POST /api/models/{source}/lfs-files/duplicate`.

`huggingface_hub` calls it on the *source* repo before a commit whose `CommitOperationCopy` names
`src_repo_id`; the commit that follows names each file as an `lfsFile` in the target. Copying is
a claim, judged per file (`publishing.duplicate`): the subject must be able to download the file
in the source, now, and to write the target.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from releasehub import publishing
from releasehub.access import Permission
from releasehub.errors import BadRequest
from releasehub.hubapi.deps import RepoContext, repo_access, repo_context
from releasehub.storage import is_sha256

router = APIRouter(tags=["upload"])


class DuplicateTarget(BaseModel):
    type: str = "model"
    name: str = Field(max_length=200)


class DuplicateFile(BaseModel):
    sha256: str = Field(max_length=64)
    xetHash: str | None = Field(default=None, max_length=64)
    filename: str | None = Field(default=None, max_length=2000)


class DuplicateBody(BaseModel):
    target: DuplicateTarget
    files: list[DuplicateFile] = Field(max_length=1000)


@router.post("/api/models/{namespace}/{name}/lfs-files/duplicate")
def duplicate_lfs_files(
    body: DuplicateBody, ctx: RepoContext = Depends(repo_access(Permission.REPO_DOWNLOAD)),
) -> dict[str, Any]:
    if body.target.type != "model":
        raise BadRequest(f"Only model repositories are served here, not {body.target.type!r}.")
    if body.target.name.count("/") != 1:
        raise BadRequest(f"The target must be NAMESPACE/NAME, not {body.target.name!r}.")
    for item in body.files:
        if not is_sha256(item.sha256):
            raise BadRequest(f"sha256 {item.sha256!r} must be 64 lowercase hex digits.")
    namespace, name = body.target.name.split("/")
    target = repo_context(ctx.session, ctx.subject, ctx.services, namespace, name, Permission.REPO_WRITE)
    files = [publishing.CopySource(f.sha256, f.xetHash) for f in body.files]
    failed = publishing.duplicate(ctx.session, ctx.subject, ctx.repo, target.repo, files)
    ctx.session.commit()
    return {"failed": failed, "duplicated": len(files) - len(failed)}
