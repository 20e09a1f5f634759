"""A release's settings page: its whole policy (stages included) for the team, edited by admins.

The page shows what `GET /api/models/{repo}/policy` answers, so it declares the same permission
(write role: the stages name files before their release). Changing anything declares the admin
role, as `PUT /policy` and `PUT /settings` do, and goes through the same service calls: the
policy is validated whole and nothing changes on an error, which is shown where it was made with
the text the admin typed kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from releasehub.access import Permission
from releasehub.access import service as access_service
from releasehub.access.policy import DEFAULT_COMPONENTS, PolicyDoc
from releasehub.errors import BadRequest, ReleasehubError
from releasehub.hubapi.deps import wake_dispatcher
from releasehub.text import require_json_text
from releasehub.web.auth import RepoPage, check_csrf, page_repo
from releasehub.web.repo_pages import base_context
from releasehub.web.routing import PageRoute
from releasehub.web.templating import render
from releasehub.webhooks import service as webhooks

router = APIRouter(route_class=PageRoute, include_in_schema=False)

MAX_POLICY_CHARS = 200_000
VISIBILITIES = ("public", "internal", "private")
GATE_MODES = ("off", "auto", "manual")
# Notices are picked by key, never taken from the URL as text.
NOTICES = {
    "policy": "The policy was saved.",
    "settings": "Visibility and gate were saved.",
}


class _PolicyLoader(yaml.SafeLoader):
    """SafeLoader without aliases: a policy has no use for them, and `*a` repeated inside nested
    anchors (a "billion laughs" document) would make every later walk over the value exponential."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a policy",
                                              event.start_mark)
        return super().compose_node(parent, index)


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "an unknown place"


def parse_yaml(text: str) -> dict[str, Any]:
    """The policy mapping a YAML text holds; BadRequest names the line and column of a problem."""
    if len(text) > MAX_POLICY_CHARS:
        raise BadRequest(f"The policy is longer than {MAX_POLICY_CHARS:,} characters.")
    if not text.strip():
        raise BadRequest("The policy is empty. To clear it, write {} (an empty mapping).")
    loader = _PolicyLoader(text)
    try:
        node = loader.get_single_node()
        value = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise BadRequest(f"YAML syntax error at {_at(mark)}: {exc.problem or exc.context}.") from None
    except yaml.YAMLError as exc:
        raise BadRequest(f"YAML syntax error: {exc}.") from None
    finally:
        loader.dispose()
    if not isinstance(value, dict):
        mark = node.start_mark if node is not None else None
        raise BadRequest(f"The policy at {_at(mark)} is not a mapping: write keys such as "
                         "`gated: manual`, `tiers:` and `stages:`, one per line.")
    require_json_text(value, "the policy document")
    return value


def policy_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)


@dataclass(frozen=True)
class ReleaseRow:
    audience: str
    at: datetime
    past: bool


def timeline(doc: PolicyDoc, now: datetime) -> list[dict[str, Any]]:
    """Each stage with its releases in time order, each marked past or still to come."""
    out = []
    for stage in doc.stages:
        releases = [ReleaseRow(r.audience, r.at, r.at <= now) for r in sorted(stage.releases, key=lambda r: r.at)]
        out.append({"name": stage.name, "files": stage.files, "releases": releases})
    return out


def eligibility_rows(doc: PolicyDoc) -> list[tuple[str, str]]:
    rules = doc.eligibility
    rows = []
    if rules.allowed_countries:
        rows.append(("Allowed countries", ", ".join(rules.allowed_countries)))
    if rules.denied_countries:
        rows.append(("Denied countries", ", ".join(rules.denied_countries)))
    if rules.eu_disallowed:
        rows.append(("European Union", "requesters in the EU are refused"))
    if rules.min_age is not None:
        rows.append(("Minimum age", str(rules.min_age)))
    if rules.purposes:
        rows.append(("Allowed purposes", ", ".join(rules.purposes)))
    if rules.email_domains:
        rows.append(("Verified email at", ", ".join(rules.email_domains)))
    return rows


def webhook_rows(page: RepoPage) -> list[dict[str, Any]]:
    """The repo's webhooks with their newest delivery: the admin's, as `GET /webhooks` is."""
    ctx = page.ctx
    rows = []
    for hook in webhooks.list_webhooks(ctx.session, ctx.repo):
        last = webhooks.list_deliveries(ctx.session, ctx.repo, hook.id, limit=1)
        rows.append({"hook": hook, "last": last[0] if last else None})
    return rows


def _settings(request: Request, page: RepoPage, *, status: int = 200, error: str | None = None,
              error_for: str | None = None, typed: str | None = None, notice: str | None = None) -> Response:
    ctx = page.ctx
    doc = access_service.stored_doc(ctx.repo)
    effective = access_service.effective_doc(ctx.repo)
    base = base_context(page, "settings")
    context = {
        **base,
        "doc": doc,
        "effective": effective,
        "gate_mode": ctx.repo.gated or "off",
        "visibilities": VISIBILITIES,
        "gate_modes": GATE_MODES,
        "custom_components": sorted(doc.components.items()),
        "default_components": DEFAULT_COMPONENTS,
        "stages": timeline(doc, ctx.now),
        "eligibility": eligibility_rows(doc),
        "policy_text": typed if typed is not None else policy_yaml(effective),
        "webhooks": webhook_rows(page) if base["can_admin"] else None,
        "now": ctx.now,
        "error": error,
        "error_for": error_for,
        "notice": NOTICES.get(notice or ""),
        "endpoint": str(request.base_url).rstrip("/"),
    }
    return render(request, "settings.html", context, status=status)


@router.get("/{namespace}/{name}/settings")
def settings_page(request: Request, page: RepoPage = Depends(page_repo(Permission.REPO_WRITE)),
                  notice: str | None = None) -> Response:
    return _settings(request, page, notice=notice)


@router.post("/{namespace}/{name}/settings/policy")
async def save_policy(request: Request, page: RepoPage = Depends(page_repo(Permission.REPO_ADMIN))) -> Response:
    ctx = page.ctx
    form = await check_csrf(request, page.viewer)
    text = form.get("policy", "")
    try:
        raw = parse_yaml(text)
        access_service.set_policy(ctx.session, ctx.repo, raw, ctx.subject.name, ctx.now, source="web")
    except ReleasehubError as exc:
        ctx.session.rollback()
        return _settings(request, page, status=exc.status_code, error=exc.message, error_for="policy", typed=text)
    ctx.session.commit()
    wake_dispatcher(request)
    return RedirectResponse(f"/{ctx.repo.repo_id}/settings?notice=policy", status_code=303)


@router.post("/{namespace}/{name}/settings/visibility")
async def save_settings(request: Request, page: RepoPage = Depends(page_repo(Permission.REPO_ADMIN))) -> Response:
    ctx = page.ctx
    form = await check_csrf(request, page.viewer)
    visibility, gated = form.get("visibility", ""), form.get("gated", "")
    try:
        if visibility not in VISIBILITIES:
            raise BadRequest(f"Choose the visibility: one of {', '.join(VISIBILITIES)}.")
        if gated not in GATE_MODES:
            raise BadRequest(f"Choose the gate: one of {', '.join(GATE_MODES)}.")
        access_service.update_settings(ctx.session, ctx.repo, visibility=visibility,
                                       gated=False if gated == "off" else gated, actor=ctx.subject.name)
    except ReleasehubError as exc:
        ctx.session.rollback()
        return _settings(request, page, status=exc.status_code, error=exc.message, error_for="settings")
    ctx.session.commit()
    wake_dispatcher(request)
    return RedirectResponse(f"/{ctx.repo.repo_id}/settings?notice=settings", status_code=303)
