"""`GET /api/models/{repo}/access-profile[/{revision}]`: the access profile of a stored revision.

The route needs what reading the repo's metadata needs (`REPO_READ`); then each file counts
only as far as `decide` lets this subject see it (listed) and download it (content). See
`releasehub.analysis.service` for how that shapes the profile and its cache key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from releasehub.access import Permission
from releasehub.analysis.readers.source import AnalysisError
from releasehub.analysis.service import cached_profile, split_view
from releasehub.errors import BadRequest
from releasehub.hubapi.deps import RepoContext, decode_segment, repo_access
from releasehub.repos import service as repos

router = APIRouter(tags=["analysis"])


def _profile(ctx: RepoContext, revision: str) -> dict[str, Any]:
    commit = repos.resolve_revision(ctx.session, ctx.repo, decode_segment(revision))
    files = repos.commit_files(ctx.session, commit)
    readable, listed = split_view(files, ctx.visible,
                                  lambda path: ctx.decide(Permission.REPO_DOWNLOAD, path).allowed)
    try:
        return cached_profile(ctx.session, ctx.services.store, ctx.repo, ctx.repo.repo_id, commit, readable, listed)
    except AnalysisError as exc:
        raise BadRequest(f"Cannot analyse {ctx.repo.repo_id} at {commit.oid[:12]}: {exc}") from None


@router.get("/api/models/{namespace}/{name}/access-profile")
def access_profile(ctx: RepoContext = Depends(repo_access(Permission.REPO_READ))) -> dict[str, Any]:
    return _profile(ctx, repos.DEFAULT_BRANCH)


@router.get("/api/models/{namespace}/{name}/access-profile/{revision}")
def access_profile_at(revision: str,
                      ctx: RepoContext = Depends(repo_access(Permission.REPO_READ))) -> dict[str, Any]:
    return _profile(ctx, revision)
