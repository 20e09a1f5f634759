"""Reading a revision: tree listings, paths-info, refs, commit history; branches and tags."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from releasehub.access import Permission
from releasehub.errors import BadRequest
from releasehub.hubapi import shapes
from releasehub.hubapi.deps import RepoContext, decode_segment, repo_access
from releasehub.repos import service as repos
from releasehub.repos.models import Commit
from releasehub.repos.paths import validate_path
from releasehub.xet import downloads as xet_downloads

router = APIRouter(tags=["revisions"])

TREE_PAGE = 1000
WITHHELD_TITLE = "(commit message withheld: it names files you cannot see)"
MAX_PATHS_INFO = 1000


def _expanded(ctx: RepoContext, head: Commit, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`expand=true`: each entry's last commit (its title withheld where it names hidden files)."""
    last = repos.last_commits(ctx.session, ctx.repo, head, [e["path"] for e in entries])
    hidden = ctx.hidden_names()
    for entry in entries:
        commit = last.get(entry["path"])
        if commit is not None:
            entry["lastCommit"] = {"id": commit.oid, "title": _title(commit, hidden),
                                   "date": shapes.iso(commit.created_at)}
    return entries


def _with_xet(ctx: RepoContext, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`xetHash` on the entries (all visible already) whose content was uploaded through Xet to this repo."""
    shas = {e["lfs"]["oid"] for e in entries if "lfs" in e}
    if shas:
        hashes = xet_downloads.xet_hashes(ctx.session, ctx.repo.id, shas)
        for entry in entries:
            if "lfs" in entry and entry["lfs"]["oid"] in hashes:
                entry["xetHash"] = hashes[entry["lfs"]["oid"]]
    return entries


def _title(commit: Commit, hidden: set[str]) -> str:
    withheld = bool(hidden) and (repos.names_any(commit.title, hidden) or repos.names_any(commit.message, hidden))
    return WITHHELD_TITLE if withheld else commit.title


def _tree(request: Request, response: Response, ctx: RepoContext, revision: str, path: str, recursive: bool,
          cursor: int, limit: int, expand: bool = False) -> list[dict[str, Any]]:
    commit = repos.resolve_revision(ctx.session, ctx.repo, decode_segment(revision))
    path = decode_segment(path).strip("/")
    if path:
        validate_path(path)
    # Files a stage or tier hides do not exist for this subject: filtered before folders are derived.
    entries = repos.tree_entries(ctx.visible_files(repos.commit_files(ctx.session, commit)), path, recursive)
    page = entries[cursor : cursor + limit]
    if cursor + limit < len(entries):
        query = dict(request.query_params)
        query["cursor"] = str(cursor + limit)
        next_url = f"{str(request.url).split('?', 1)[0]}?{urlencode(query)}"
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    out = _with_xet(ctx, [shapes.tree_entry(e) for e in page])
    return _expanded(ctx, commit, out) if expand else out


@router.get("/api/models/{namespace}/{name}/tree/{revision}")
def tree_root(
    request: Request,
    response: Response,
    revision: str,
    recursive: bool = Query(False),
    expand: bool = Query(False),
    cursor: int = Query(0, ge=0, le=2**31 - 1),
    limit: int = Query(TREE_PAGE, ge=1, le=TREE_PAGE),
    ctx: RepoContext = Depends(repo_access(Permission.REPO_READ)),
) -> list[dict[str, Any]]:
    return _tree(request, response, ctx, revision, "", recursive, cursor, limit, expand)


@router.get("/api/models/{namespace}/{name}/tree/{revision}/{path:path}")
def tree_path(
    request: Request,
    response: Response,
    revision: str,
    path: str,
    recursive: bool = Query(False),
    expand: bool = Query(False),
    cursor: int = Query(0, ge=0, le=2**31 - 1),
    limit: int = Query(TREE_PAGE, ge=1, le=TREE_PAGE),
    ctx: RepoContext = Depends(repo_access(Permission.REPO_READ)),
) -> list[dict[str, Any]]:
    return _tree(request, response, ctx, revision, path, recursive, cursor, limit, expand)


class PathsInfoBody(BaseModel):
    paths: list[str] = Field(max_length=MAX_PATHS_INFO)
    expand: bool = False


@router.post("/api/models/{namespace}/{name}/paths-info/{revision}")
async def paths_info(
    request: Request, revision: str, ctx: RepoContext = Depends(repo_access(Permission.REPO_READ))
) -> list[dict[str, Any]]:
    # huggingface_hub sends a form (paths=a&paths=b); other clients send JSON.
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = PathsInfoBody.model_validate_json(await request.body())
        except ValueError as exc:
            raise BadRequest(f"Invalid paths-info body: {exc}") from None
        paths, form_expand = body.paths, str(body.expand)
    else:
        form = await request.form(max_files=0, max_fields=MAX_PATHS_INFO + 2)
        paths = [str(p) for p in form.getlist("paths")]
        form_expand = str(form.get("expand") or "")
    if len(paths) > MAX_PATHS_INFO:
        raise BadRequest(f"Ask for at most {MAX_PATHS_INFO} paths at once.")
    expand = str(form_expand).lower() in ("1", "true", "yes")
    commit = repos.resolve_revision(ctx.session, ctx.repo, decode_segment(revision))
    files = ctx.visible_files(repos.commit_files(ctx.session, commit))
    found = []
    for path in paths:
        info = repos.path_info(files, path.strip("/")) if path.strip("/") else None
        if info is not None:
            found.append(shapes.tree_entry(info))
    found = _with_xet(ctx, found)
    return _expanded(ctx, commit, found) if expand else found


@router.get("/api/models/{namespace}/{name}/refs")
def list_refs(ctx: RepoContext = Depends(repo_access(Permission.REPO_READ))) -> dict[str, Any]:
    listing = repos.list_refs(ctx.session, ctx.repo)
    return {
        "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": oid} for n, oid in listing.branches],
        "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": oid} for n, oid in listing.tags],
        "converts": [],
        "pullRequests": [],
    }


@router.get("/api/models/{namespace}/{name}/commits/{revision}")
def list_commits(
    revision: str, ctx: RepoContext = Depends(repo_access(Permission.REPO_READ))
) -> list[dict[str, Any]]:
    head = repos.resolve_revision(ctx.session, ctx.repo, decode_segment(revision))
    # A title such as "Upload llama-70b/model-00002.safetensors" names a file that a stage or tier
    # may hide from this subject: such titles and descriptions are withheld.
    hidden = ctx.hidden_names()
    out = []
    for c in repos.list_commits(ctx.session, ctx.repo, head):
        title = _title(c, hidden)
        out.append({
            "id": c.oid,
            "title": title,
            "message": "" if title == WITHHELD_TITLE else c.message,
            "authors": [{"user": c.author}],
            "date": shapes.iso(c.created_at),
        })
    return out


class BranchBody(BaseModel):
    startingPoint: str | None = Field(default=None, max_length=255)


@router.post("/api/models/{namespace}/{name}/branch/{branch}")
def create_branch(
    branch: str, body: BranchBody | None = None, ctx: RepoContext = Depends(repo_access(Permission.REPO_WRITE))
) -> dict[str, str]:
    ref = repos.create_branch(ctx.session, ctx.repo, decode_segment(branch),
                              body.startingPoint if body else None)
    ctx.session.commit()
    return {"name": ref.name, "ref": f"refs/heads/{ref.name}"}


@router.delete("/api/models/{namespace}/{name}/branch/{branch}")
def delete_branch(branch: str, ctx: RepoContext = Depends(repo_access(Permission.REPO_WRITE))) -> dict[str, str]:
    repos.delete_branch(ctx.session, ctx.repo, decode_segment(branch))
    ctx.session.commit()
    return {"deleted": decode_segment(branch)}


class TagBody(BaseModel):
    tag: str = Field(max_length=255)
    message: str | None = Field(default=None, max_length=10_000)


@router.post("/api/models/{namespace}/{name}/tag/{revision}")
def create_tag(
    revision: str, body: TagBody, ctx: RepoContext = Depends(repo_access(Permission.REPO_WRITE))
) -> dict[str, str]:
    ref = repos.create_tag(ctx.session, ctx.repo, body.tag, decode_segment(revision), body.message)
    ctx.session.commit()
    return {"name": ref.name, "ref": f"refs/tags/{ref.name}"}


@router.delete("/api/models/{namespace}/{name}/tag/{tag}")
def delete_tag(tag: str, ctx: RepoContext = Depends(repo_access(Permission.REPO_WRITE))) -> dict[str, str]:
    repos.delete_tag(ctx.session, ctx.repo, decode_segment(tag))
    ctx.session.commit()
    return {"deleted": decode_segment(tag)}
