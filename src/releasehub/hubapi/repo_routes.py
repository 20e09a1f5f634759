"""Repo lifecycle and model info: create, delete, settings, info, listing."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from releasehub.access import Permission, decide, decide_namespace
from releasehub.access import service as access_service
from releasehub.accounts import service as accounts
from releasehub.accounts.service import Subject
from releasehub.db import utcnow
from releasehub.errors import BadRequest, RepoExists
from releasehub.events import emit
from releasehub.hubapi import shapes
from releasehub.hubapi.deps import (
    AccessDenied,
    RepoContext,
    decode_segment,
    get_services,
    get_session,
    load_repo_checked,
    policy_of,
    repo_access,
    repo_context,
    requires,
    wake_dispatcher,
)
from releasehub.repos import service as repos
from releasehub.repos.cards import model_index_problems, parse_card
from releasehub.services import Services

router = APIRouter(tags=["repos"])


class CreateRepoBody(BaseModel):
    name: str = Field(max_length=200)
    organization: str | None = Field(default=None, max_length=96)
    private: bool | None = None
    # huggingface_hub >= 1.x sends `visibility` ("public" | "private") instead of `private`.
    visibility: str | None = Field(default=None, max_length=20)
    type: str = "model"
    exist_ok: bool | None = None


class DeleteRepoBody(BaseModel):
    name: str = Field(max_length=200)
    organization: str | None = Field(default=None, max_length=96)
    type: str = "model"


class RepoSettingsBody(BaseModel):
    private: bool | None = None
    visibility: str | None = Field(default=None, max_length=20)
    gated: str | bool | None = None


def _wanted_visibility(private: bool | None, visibility: str | None) -> str | None:
    """The requested visibility from `private` (older clients) or `visibility` (newer ones, and `internal`)."""
    if visibility is None:
        return None if private is None else ("private" if private else "public")
    if visibility not in ("public", "private", "internal"):
        raise BadRequest(f"Unsupported visibility {visibility!r} for a model repository; "
                         "use 'public', 'internal' (members of the owning organisation) or 'private'.")
    if private is not None and private != (visibility != "public"):
        raise BadRequest("`private` and `visibility` disagree; send only one of them.")
    return visibility


def repo_url(request: Request, repo_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/{repo_id}"


def _split(body_name: str, organization: str | None) -> tuple[str | None, str]:
    if "/" in body_name:
        namespace, _, name = body_name.partition("/")
        return namespace, name
    return organization, body_name


def _check_type(repo_type: str) -> None:
    if repo_type != "model":
        raise BadRequest(f"Only model repositories are served here, not {repo_type!r}.")


@router.post("/api/repos/create")
def create_repo(
    request: Request,
    body: CreateRepoBody,
    subject: Subject = Depends(requires(Permission.REPO_CREATE)),
    session: Session = Depends(get_session),
    services: Services = Depends(get_services),
) -> dict[str, Any]:
    _check_type(body.type)
    visibility = _wanted_visibility(body.private, body.visibility) or "public"
    namespace, name = _split(body.name, body.organization)
    namespace = namespace or subject.name or ""
    # `Alice/model` creates under the user `alice`: one namespace, whatever the case it is named in.
    namespace = accounts.canonical_namespace(session, namespace) or namespace
    decision = decide_namespace(subject, namespace, accounts.namespace_exists(session, namespace))
    if not decision.allowed:
        raise AccessDenied(decision.reason, decision.status, decision.error_code)
    existing = repos.find_repo(session, namespace, name)
    if existing is not None:
        visible = decide(subject, policy_of(existing), Permission.REPO_READ, utcnow()).allowed
        raise RepoExists(
            f"You already created this model repo: {existing.repo_id}" if visible else "Repository already exists.",
            url=repo_url(request, existing.repo_id),
        )
    repo = repos.create_repo(
        session, services.store, namespace, name, author=subject.name or "", visibility=visibility
    )
    access_service.check_visibility(session, repo, visibility)  # raising rolls the new repo back
    emit(session, "repo.created", repo, actor=subject.name, details={"visibility": visibility})
    session.commit()
    return {"url": repo_url(request, repo.repo_id), "name": repo.repo_id, "id": f"{repo.id:024x}"}


@router.delete("/api/repos/delete")
def delete_repo(
    body: DeleteRepoBody,
    subject: Subject = Depends(requires(Permission.REPO_ADMIN)),
    session: Session = Depends(get_session),
) -> dict[str, str]:
    _check_type(body.type)
    namespace, name = _split(body.name, body.organization)
    namespace = namespace or subject.name or ""
    repo = load_repo_checked(session, subject, namespace, name, Permission.REPO_ADMIN)
    emit(session, "repo.deleted", repo, actor=subject.name)
    repos.delete_repo(session, repo)
    session.commit()
    return {"deleted": f"{namespace}/{name}"}


@router.put("/api/models/{namespace}/{name}/settings")
def update_settings(
    request: Request, body: RepoSettingsBody, ctx: RepoContext = Depends(repo_access(Permission.REPO_ADMIN))
) -> dict[str, Any]:
    visibility = _wanted_visibility(body.private, body.visibility)
    access_service.update_settings(ctx.session, ctx.repo, visibility=visibility, gated=body.gated,
                                   actor=ctx.subject.name)
    ctx.session.commit()
    wake_dispatcher(request)
    return {"private": ctx.repo.private, "visibility": ctx.repo.visibility, "gated": ctx.repo.gated or False}


def _config_summary(ctx: RepoContext, files: dict[str, repos.FileState]) -> dict[str, Any] | None:
    state = files.get("config.json")  # `files` holds only what the subject may see
    if state is None or state.size > 1024 * 1024:
        return None
    try:
        config = json.loads(ctx.services.store.read_bytes(state.sha256))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(config, dict):
        return None
    return {k: config[k] for k in ("architectures", "model_type") if k in config}


def _model_info(ctx: RepoContext, revision: str, blobs: bool) -> dict[str, Any]:
    commit = repos.resolve_revision(ctx.session, ctx.repo, revision)
    all_files = repos.commit_files(ctx.session, commit)
    files = ctx.visible_files(all_files)
    # The repo's total storage would reveal the size of hidden files: outsiders of a staged or
    # tiered repo get the size of what they can see.
    used = repos.used_storage(ctx.session, ctx.repo) if files is all_files else sum(f.size for f in files.values())
    return shapes.model_info(ctx.repo, commit, files, with_blobs=blobs, used_storage=used,
                             config=_config_summary(ctx, files), team=ctx.team)


@router.get("/api/models/{namespace}/{name}")
def model_info(
    blobs: bool = Query(False), ctx: RepoContext = Depends(repo_access(Permission.REPO_READ))
) -> dict[str, Any]:
    return _model_info(ctx, repos.DEFAULT_BRANCH, blobs)


@router.get("/api/models/{namespace}/{name}/revision/{revision}")
def model_info_at_revision(
    revision: str, blobs: bool = Query(False), ctx: RepoContext = Depends(repo_access(Permission.REPO_READ))
) -> dict[str, Any]:
    return _model_info(ctx, decode_segment(revision), blobs)


@router.get("/api/models")
def list_models(
    search: str | None = Query(None, max_length=200),
    author: str | None = Query(None, max_length=96),
    limit: int | None = Query(None, ge=1, le=1000),
    full: bool = Query(False),
    subject: Subject = Depends(requires(Permission.REPO_LIST)),
    session: Session = Depends(get_session),
    services: Services = Depends(get_services),
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for repo in repos.list_repos(session, author=author, search=search):
        try:
            ctx = repo_context(session, subject, services, repo.namespace, repo.name, Permission.REPO_READ)
        except AccessDenied:
            continue
        commit = repos.resolve_revision(session, repo, repos.DEFAULT_BRANCH)
        files = ctx.visible_files(repos.commit_files(session, commit)) if full else {}
        info = shapes.model_info(repo, commit, files, with_blobs=False, team=ctx.team)
        if not full:
            info.pop("siblings", None)
        results.append(info)
        if limit is not None and len(results) >= limit:
            break
    return results


class ValidateYamlBody(BaseModel):
    content: str = Field(max_length=10 * 1024 * 1024)
    repoType: str = "model"


@router.post("/api/validate-yaml")
def validate_yaml(
    body: ValidateYamlBody, _: Subject = Depends(requires(Permission.PUBLIC))
) -> JSONResponse:
    """Checks a model card's front matter before an upload (as `upload_folder` asks)."""
    data, error = parse_card(body.content)
    if error is None and data:
        problems = model_index_problems(data)
        if problems:
            error = "README.md metadata is not valid: " + "; ".join(problems[:5]) + "."
    if error is not None:
        return JSONResponse({"errors": [{"message": error}], "warnings": []}, status_code=400,
                            headers={"X-Error-Code": "BadRequest", "X-Error-Message": error[:500]})
    warnings = [] if data else [{"message": "empty or missing yaml metadata in repo card"}]
    return JSONResponse({"errors": [], "warnings": warnings})
