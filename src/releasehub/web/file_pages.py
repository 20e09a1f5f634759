"""Files and history of a release: folder listings, one file, the commit history and one commit.

These pages show what the API's tree, paths-info and commits routes answer, filtered the same
way: files a stage or tier hides are dropped before folders are derived (`ctx.visible_files`),
commit titles that name a hidden file are withheld (`tree_routes._title`), and a hidden file or
folder is the same 404 page as a missing one. The error pages do not repeat the requested path,
so that the two cannot differ in anything but the URL.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse

from releasehub.access import Permission
from releasehub.errors import EntryNotFound, RevisionNotFound
from releasehub.hubapi.deps import RepoContext, decode_segment
from releasehub.hubapi.tree_routes import WITHHELD_TITLE, _title as commit_title
from releasehub.repos import listing
from releasehub.repos import service as repos
from releasehub.repos.models import Commit
from releasehub.repos.paths import validate_path
from releasehub.web.auth import RepoPage, page_repo
from releasehub.web.list_pages import paginate
from releasehub.web.repo_pages import base_context
from releasehub.web.routing import PageRoute
from releasehub.web.templating import card_body, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

TREE_PAGE = 1000
COMMITS_PAGE = 50
MAX_TEXT_BYTES = 1024 * 1024
_OID = re.compile(r"^[0-9a-f]{4,40}$")


def rev_url(revision: str) -> str:
    """A revision as one URL segment: the slashes of `refs/pr/1` encoded, as clients send them."""
    return quote(revision, safe="")


def path_url(path: str) -> str:
    return quote(path, safe="/")


def _no_file(commit: Commit) -> EntryNotFound:
    return EntryNotFound(f"No such file at revision {commit.oid[:12]} of this repository.")


def _no_folder(commit: Commit) -> EntryNotFound:
    return EntryNotFound(f"No such folder at revision {commit.oid[:12]} of this repository.")


def _clean(path: str) -> str:
    path = decode_segment(path).strip("/")
    return validate_path(path) if path else ""


def _revision(ctx: RepoContext, revision: str) -> tuple[str, Commit]:
    name = decode_segment(revision)
    return name, repos.resolve_revision(ctx.session, ctx.repo, name)


def _is_folder(files: dict[str, repos.FileState], path: str) -> bool:
    prefix = path + "/"
    return any(p.startswith(prefix) for p in files)


def crumbs(repo_id: str, revision: str, path: str) -> list[tuple[str, str]]:
    """(name, folder URL) from the repo's root down to `path`."""
    base = f"/{repo_id}/tree/{rev_url(revision)}"
    out = [(repo_id.split("/", 1)[1], base)]
    parts = path.split("/") if path else []
    for i, part in enumerate(parts):
        out.append((part, f"{base}/{path_url('/'.join(parts[:i + 1]))}"))
    return out


def _file_context(page: RepoPage, tab: str, revision: str, commit: Commit, path: str) -> dict[str, Any]:
    repo_id = page.ctx.repo.repo_id
    return {**base_context(page, tab), "revision": revision, "rev": rev_url(revision), "commit": commit,
            "path": path, "crumbs": crumbs(repo_id, revision, path)}


@router.get("/{namespace}/{name}/tree/{revision}")
def tree_root(request: Request, revision: str, p: int = Query(1, ge=1, le=100_000),
              page: RepoPage = Depends(page_repo(Permission.REPO_READ))) -> Response:
    return _tree(request, page, revision, "", p)


@router.get("/{namespace}/{name}/tree/{revision}/{path:path}")
def tree_path(request: Request, revision: str, path: str, p: int = Query(1, ge=1, le=100_000),
              page: RepoPage = Depends(page_repo(Permission.REPO_READ))) -> Response:
    return _tree(request, page, revision, path, p)


def _tree(request: Request, page: RepoPage, revision: str, path: str, number: int) -> Response:
    ctx = page.ctx
    name, commit = _revision(ctx, revision)
    path = _clean(path)
    # Files a stage or tier hides do not exist for this viewer: dropped before folders are derived.
    files = ctx.visible_files(repos.commit_files(ctx.session, commit))
    if path and path in files:
        return RedirectResponse(f"/{ctx.repo.repo_id}/blob/{rev_url(name)}/{path_url(path)}", status_code=302)
    if path and not _is_folder(files, path):
        raise _no_folder(commit)
    entries = repos.tree_entries(files, path)
    ordered = [e for e in entries if e.type == "directory"] + [e for e in entries if e.type == "file"]
    shown, pager = paginate(request, ordered, number, TREE_PAGE)
    rows = [{"name": e.path.rsplit("/", 1)[-1], "folder": e.type == "directory", "size": e.size, "lfs": e.lfs,
             "url": f"/{ctx.repo.repo_id}/{'tree' if e.type == 'directory' else 'blob'}/{rev_url(name)}/"
                    f"{path_url(e.path)}"} for e in shown]
    context = {**_file_context(page, "files", name, commit, path), "rows": rows, "pager": pager}
    return render(request, "tree.html", context)


@router.get("/{namespace}/{name}/blob/{revision}/{path:path}")
def blob_page(request: Request, revision: str, path: str, plain: bool = Query(False),
              page: RepoPage = Depends(page_repo(Permission.REPO_READ))) -> Response:
    ctx = page.ctx
    name, commit = _revision(ctx, revision)
    path = _clean(path)
    if not path:
        return RedirectResponse(f"/{ctx.repo.repo_id}/tree/{rev_url(name)}", status_code=302)
    files = ctx.visible_files(repos.commit_files(ctx.session, commit))
    state = files.get(path)
    if state is None:
        if _is_folder(files, path):
            return RedirectResponse(f"/{ctx.repo.repo_id}/tree/{rev_url(name)}/{path_url(path)}", status_code=302)
        raise _no_file(commit)
    decision = ctx.decide(Permission.REPO_DOWNLOAD, path)
    if decision.hidden:
        raise _no_file(commit)
    text, why = _text_of(ctx, state) if decision.allowed else (None, None)
    markdown = text is not None and not plain and path.lower().endswith(".md")
    context = {
        **_file_context(page, "files", name, commit, path),
        "file": state, "decision": decision, "text": text, "why": why, "plain": plain,
        "markdown": card_body(text) if markdown and text is not None else None,
        "download": f"/{ctx.repo.repo_id}/resolve/{rev_url(name)}/{path_url(path)}",
    }
    if decision.allowed:
        return render(request, "blob.html", context)
    # The API's refusal for this file (GatedRepo 401/403, HostedOnly 403), as a page.
    headers = {"X-Error-Code": decision.error_code} if decision.error_code else None
    return render(request, "blob.html", context, status=decision.status, headers=headers)


def _text_of(ctx: RepoContext, state: repos.FileState) -> tuple[str | None, str | None]:
    """The file's text when it is small UTF-8 text, else (None, why not)."""
    if state.size > MAX_TEXT_BYTES:
        return None, "large"
    try:
        data = ctx.services.store.read_bytes(state.sha256)
    except FileNotFoundError:
        return None, "unavailable"
    if b"\x00" in data:
        return None, "binary"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "binary"


@router.get("/{namespace}/{name}/commits/{revision}")
def commits_page(request: Request, revision: str, p: int = Query(1, ge=1, le=100_000),
                 page: RepoPage = Depends(page_repo(Permission.REPO_READ))) -> Response:
    ctx = page.ctx
    name, head = _revision(ctx, revision)
    # A title such as "Upload llama-70b/model.safetensors" names a file a stage or tier may hide.
    hidden = ctx.hidden_names()
    history = repos.list_commits(ctx.session, ctx.repo, head)
    shown, pager = paginate(request, history, p, COMMITS_PAGE)
    rows = [{"oid": c.oid, "title": commit_title(c, hidden), "author": c.author, "date": c.created_at}
            for c in shown]
    context = {**_file_context(page, "commits", name, head, ""), "rows": rows, "pager": pager}
    return render(request, "commits.html", context)


def _find_commit(ctx: RepoContext, oid: str) -> Commit:
    """A full commit oid, or a prefix that names exactly one commit of this repo."""
    wanted = oid.lower()
    if _OID.match(wanted):
        commit = repos.find_commit(ctx.session, ctx.repo, wanted) if len(wanted) == 40 else None
        if commit is not None:
            return commit
        if len(wanted) < 40:
            found = listing.commits_by_prefix(ctx.session, ctx.repo, wanted)
            if len(found) == 1:
                return found[0]
            if found:
                raise RevisionNotFound(f"{oid} names more than one commit of {ctx.repo.repo_id}: "
                                       "give more of its characters.")
    raise RevisionNotFound(f"No commit {oid[:40]!r} in {ctx.repo.repo_id}: give a commit id from its history.")


@router.get("/{namespace}/{name}/commit/{oid}")
def commit_page(request: Request, oid: str, page: RepoPage = Depends(page_repo(Permission.REPO_READ))) -> Response:
    ctx = page.ctx
    commit = _find_commit(ctx, oid)
    title = commit_title(commit, ctx.hidden_names())
    files = ctx.visible_files(repos.commit_files(ctx.session, commit))
    parent = repos.find_commit(ctx.session, ctx.repo, commit.parent_oid) if commit.parent_oid else None
    older = ctx.visible_files(repos.commit_files(ctx.session, parent)) if parent is not None else {}
    rows = _changes(ctx, commit, parent, older, files)
    context = {
        **_file_context(page, "commits", commit.oid, commit, ""),
        "title": title, "withheld": title == WITHHELD_TITLE,
        "message": "" if title == WITHHELD_TITLE else commit.message,
        "parent": parent, "rows": rows,
        "counts": {kind: sum(1 for row in rows if row["change"] == kind) for kind in ("added", "changed", "removed")},
    }
    return render(request, "commit.html", context)


def _changes(ctx: RepoContext, commit: Commit, parent: Commit | None, older: dict[str, repos.FileState],
             newer: dict[str, repos.FileState]) -> list[dict[str, Any]]:
    """Visible files added, changed and removed by `commit`, by path, each linked to its page."""
    base = f"/{ctx.repo.repo_id}/blob"
    added, changed, removed = listing.changed_files(older, newer)
    rows: list[dict[str, Any]] = []
    for kind, paths in (("added", added), ("changed", changed), ("removed", removed)):
        for path in paths:
            before, after = older.get(path), newer.get(path)
            state = after or before
            at = commit if after is not None else parent
            rows.append({"change": kind, "path": path, "before": before.size if before else None,
                         "after": after.size if after else None, "lfs": state is not None and state.lfs,
                         "url": f"{base}/{at.oid}/{path_url(path)}" if at is not None else None})
    rows.sort(key=lambda row: str(row["path"]))
    return rows
