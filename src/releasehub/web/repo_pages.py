"""The model page and the gate: what a person sees of one release, and how they ask for access."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pycountry
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from releasehub.access import Permission
from releasehub.access import service as access_service
from releasehub.access.decide import effective_tier
from releasehub.access.gradient import places
from releasehub.access.licenses import license_from_card, terms_table
from releasehub.analysis.readers.source import AnalysisError
from releasehub.analysis.service import cached_profile, split_view
from releasehub.auditlog.models import AuditEvent
from releasehub.errors import ReleasehubError
from releasehub.gateway import service as gateway_service
from releasehub.hubapi.deps import RepoContext, client_ip, wake_dispatcher
from releasehub.repos import service as repos
from releasehub.repos.cards import CARD_FILENAME
from releasehub.repos.models import Commit
from releasehub.web.auth import RepoPage, check_csrf, page_repo
from releasehub.web.routing import PageRoute
from releasehub.web.templating import card_body, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

COUNTRIES = sorted(country.name for country in pycountry.countries)
MAX_CARD_BYTES = 2 * 1024 * 1024


def read_text(ctx: RepoContext, files: dict[str, repos.FileState], path: str, limit: int) -> str | None:
    """A file's text when this subject may download it and it is small text; None otherwise."""
    state = files.get(path)
    if state is None or state.size > limit or not ctx.decide(Permission.REPO_DOWNLOAD, path).allowed:
        return None
    try:
        return ctx.services.store.read_bytes(state.sha256).decode("utf-8")
    except (UnicodeDecodeError, FileNotFoundError):
        return None


def profile_of(ctx: RepoContext, commit: Commit, files: dict[str, repos.FileState]) -> dict[str, Any] | None:
    """The access profile as this subject may see it (what the API's /access-profile answers)."""
    readable, listed = split_view(files, ctx.visible, lambda path: ctx.decide(Permission.REPO_DOWNLOAD, path).allowed)
    try:
        return cached_profile(ctx.session, ctx.services.store, ctx.repo, ctx.repo.repo_id, commit, readable, listed)
    except (AnalysisError, ReleasehubError):
        return None


def profile_summary(profile: dict[str, Any] | None) -> dict[str, Any] | None:
    if profile is None:
        return None
    parameters = profile.get("parameters") or {}
    resourcing = profile.get("resourcing") or {}
    memory = resourcing.get("weights_bytes") or {}
    gpus = {item.get("gpu"): item for item in resourcing.get("gpus") or []}
    h100 = gpus.get("h100-80gb") or {}
    mof = ((profile.get("openness") or {}).get("mof") or {})
    return {
        "parameters": parameters.get("total"),
        "active": parameters.get("active"),
        "memory": [(precision, memory[precision]) for precision in ("fp32", "bf16", "fp8", "int4") if precision in memory],
        "h100": h100.get("deployable"),
        "h100_note": h100.get("note"),
        "mof": mof.get("label"),
        "mof_reason": mof.get("reason"),
        "skill": ((profile.get("usability") or {}).get("technical_skill") or {}).get("level"),
    }


def downloads_last_30_days(session: Session, ctx: RepoContext) -> int:
    """Downloads recorded in the audit log, counting only files this subject can see."""
    since = ctx.now - timedelta(days=30)
    rows = session.execute(
        select(AuditEvent.path, func.count()).where(AuditEvent.repo == ctx.repo.repo_id,
                                                    AuditEvent.action == "file.downloaded",
                                                    AuditEvent.at >= since).group_by(AuditEvent.path)
    ).all()
    return sum(count for path, count in rows if path is None or ctx.visible(path))


def access_state(ctx: RepoContext) -> dict[str, Any]:
    """Where the viewer stands: may they download, and their request if any."""
    row = None if ctx.subject.anonymous else access_service.grant_row(ctx.session, ctx.repo, ctx.subject.user_id)
    download = ctx.decide(Permission.REPO_DOWNLOAD)
    return {
        "can_download": download.allowed,
        "message": download.reason,
        "state": access_service.status_of(row, ctx.now),
        "request": row,
        "tier": effective_tier(ctx.policy, ctx.grant, ctx.now),
        "requestable": bool(ctx.repo.gated) or ctx.policy.rules.has_tiers,
    }


def base_context(page: RepoPage, tab: str) -> dict[str, Any]:
    ctx = page.ctx
    hosted = gateway_service.hosted_of(ctx.session, ctx.repo) is not None
    return {"repo": ctx.repo, "places": places(ctx.policy, hosted=hosted), "hosted": hosted, "tab": tab,
            "team": ctx.team, "can_admin": ctx.decide(Permission.REPO_ADMIN).allowed,
            "can_review": ctx.decide(Permission.REPO_REVIEW).allowed}


@router.get("/{namespace}/{name}")
def model_page(request: Request, page: RepoPage = Depends(page_repo(Permission.REPO_READ))) -> Response:
    ctx = page.ctx
    commit = repos.resolve_revision(ctx.session, ctx.repo, repos.DEFAULT_BRANCH)
    files = ctx.visible_files(repos.commit_files(ctx.session, commit))
    card_text = read_text(ctx, files, CARD_FILENAME, MAX_CARD_BYTES)
    card_data = dict(commit.card_data or {})
    doc = access_service.stored_doc(ctx.repo)
    if doc.license:
        card_data["license"] = doc.license
    license = license_from_card(card_data)
    profile = profile_of(ctx, commit, files)
    base = str(request.base_url).rstrip("/")
    context = {
        **base_context(page, "card"),
        "commit": commit,
        "card_html": card_body(card_text) if card_text is not None else None,
        "card": card_data,
        "license": license,
        "license_rows": terms_table(license),
        "access": access_state(ctx),
        "summary": profile_summary(profile),
        "downloads": downloads_last_30_days(ctx.session, ctx),
        "files": len(files),
        "size": sum(state.size for state in files.values()),
        "endpoint": base,
    }
    return render(request, "model.html", context)


@router.get("/{namespace}/{name}/access")
def gate_page(request: Request, page: RepoPage = Depends(page_repo(Permission.REPO_READ)),
              error: str | None = None) -> Response:
    return _gate(request, page, error=error)


def _gate(request: Request, page: RepoPage, *, error: str | None = None, answers: dict[str, str] | None = None,
          status: int = 200) -> Response:
    ctx = page.ctx
    terms = access_service.terms(ctx.session, ctx.services.store, ctx.repo)
    context = {
        **base_context(page, "access"),
        "terms": terms,
        "fields": list(enumerate(terms.doc.gate.fields)),
        "countries": COUNTRIES,
        "access": access_state(ctx),
        "error": error,
        "answers": answers or {},
        "license_rows": terms_table(terms.license),
    }
    return render(request, "access.html", context, status=status)


@router.post("/{namespace}/{name}/access")
async def request_access(request: Request,
                         page: RepoPage = Depends(page_repo(Permission.ACCESS_REQUEST))) -> Response:
    ctx = page.ctx
    form = await check_csrf(request, page.viewer)
    doc = access_service.stored_doc(ctx.repo)
    fields: dict[str, Any] = {}
    for index, spec in enumerate(doc.gate.fields):
        value = form.get(f"field-{index}", "")
        if spec.type == "checkbox":
            fields[spec.label] = value == "on"
            if not fields[spec.label]:
                del fields[spec.label]  # unticked: the form's validation names the missing tick
        elif value.strip():
            fields[spec.label] = value.strip()
    geo = getattr(request.app.state, "geoip", None)
    ip = client_ip(request)
    try:
        outcome = access_service.request_access(
            ctx.session, ctx.services.store, ctx.repo, ctx.subject, fields=fields, tier=form.get("tier") or None,
            accept_license=form.get("accept_license") == "on", license_sha256=form.get("license_sha256"), ip=ip,
            geo_country=geo.country(ip) if geo is not None and ip else None, now=ctx.now)
    except ReleasehubError as exc:
        ctx.session.rollback()
        return _gate(request, page, error=exc.message, answers=form, status=exc.status_code)
    ctx.session.commit()
    wake_dispatcher(request)
    del outcome  # the page shows the recorded state, a refusal included
    return RedirectResponse(f"/{ctx.repo.repo_id}/access", status_code=303)
