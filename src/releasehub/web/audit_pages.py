"""The usage and audit pages of one release.

`/usage` shows the releasing team what the hosted (API-only) release serves: daily requests and
tokens from the gateway's metering (`gateway_usage`), per day and per key. `/audit` shows the
repo's admins its audit trail (the hash-chained `audit_events`), with filters, the downloads per
file and a CSV export of the same rows. Both read the services' tables only; who may see them is
the one `decide` of `page_repo`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from html import escape
from typing import Any, Iterator
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from releasehub.access import Permission
from releasehub.accounts.models import User
from releasehub.auditlog import log as audit_log
from releasehub.auditlog.models import AuditEvent
from releasehub.errors import BadRequest
from releasehub.gateway import service as gateway_service
from releasehub.gateway.models import ApiKey, UsageDaily
from releasehub.repos.models import Repo
from releasehub.services import Services
from releasehub.web.auth import RepoPage, page_repo
from releasehub.web.repo_pages import base_context
from releasehub.web.routing import PageRoute
from releasehub.web.templating import render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

USAGE_DAYS = 30
PAGE_SIZE = 100
CSV_CHUNK_ROWS = 500
MAX_ACTOR = 200
BAR_FILL = "#0b5cad"

# ---------------------------------------------------------------------------------------------
# Usage


@dataclass
class DayUsage:
    day: date
    requests: int = 0
    refused: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _sums() -> tuple[Any, ...]:
    return (func.sum(UsageDaily.requests), func.sum(UsageDaily.refused), func.sum(UsageDaily.errors),
            func.sum(UsageDaily.prompt_tokens), func.sum(UsageDaily.completion_tokens))


def usage_by_day(session: Session, repo: Repo, today: date) -> list[DayUsage]:
    """Every day of the window, oldest first; days without calls are zero (the chart shows gaps)."""
    first = today - timedelta(days=USAGE_DAYS - 1)
    days = {first + timedelta(days=n): DayUsage(first + timedelta(days=n)) for n in range(USAGE_DAYS)}
    rows = session.execute(select(UsageDaily.day, *_sums()).where(UsageDaily.repo_id == repo.id,
                                                                  UsageDaily.day >= first)
                           .group_by(UsageDaily.day)).all()
    for day, *counts in rows:
        if day in days:
            days[day] = DayUsage(day, *(int(value or 0) for value in counts))
    return list(days.values())


def usage_by_key(session: Session, repo: Repo, today: date) -> list[dict[str, Any]]:
    """The repo's keys (`gateway.service.list_keys`) with their totals over the window, busiest first."""
    first = today - timedelta(days=USAGE_DAYS - 1)
    rows = session.execute(
        select(ApiKey.key_id, ApiKey.tier, User.name, *_sums())
        .join(ApiKey, ApiKey.id == UsageDaily.key_pk).join(User, User.id == ApiKey.user_id, isouter=True)
        .where(UsageDaily.repo_id == repo.id, UsageDaily.day >= first)
        .group_by(ApiKey.key_id, ApiKey.tier, User.name)).all()
    keys = {row["key"]: {**row, "requests": 0, "refused": 0, "errors": 0, "prompt_tokens": 0,
                         "completion_tokens": 0}
            for row in gateway_service.list_keys(session, repo=repo)}
    for key_id, tier, user, *counts in rows:
        # A key that no longer lists this repo still served it: its usage stays on the page.
        entry = keys.setdefault(key_id, {"key": key_id, "tier": tier, "user": user, "state": "unbound"})
        entry.update(zip(("requests", "refused", "errors", "prompt_tokens", "completion_tokens"),
                         (int(value or 0) for value in counts)))
    return sorted(keys.values(), key=lambda k: (-k["requests"], k["key"]))


def bar_chart(values: list[tuple[str, int]], *, title: str, unit: str, chart_id: str) -> Markup:
    """An inline SVG bar chart. Presentation attributes only: the pages' CSP allows no inline style."""
    width, height, left, bottom, top = 720, 200, 48, 28, 12
    plot_w, plot_h = width - left - 8, height - top - bottom
    peak = max((value for _, value in values), default=0)
    step = plot_w / max(len(values), 1)
    total = sum(value for _, value in values)
    summary = (f"{total:,} {unit} in {len(values)} days, at most {peak:,} a day"
               + (f", from {values[0][0]} to {values[-1][0]}" if values else ""))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc">',
             f'<title id="{chart_id}-title">{escape(title)}</title>',
             f'<desc id="{chart_id}-desc">{escape(summary)}</desc>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" stroke="#4d5660"/>',
             f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" font-size="11" fill="#1b1f24">{peak:,}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-size="11" fill="#1b1f24">0</text>']
    for index, (label, value) in enumerate(values):
        bar_h = plot_h * value / peak if peak else 0
        x = left + index * step + step * 0.1
        parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - bar_h:.1f}" width="{step * 0.8:.1f}" '
                     f'height="{bar_h:.1f}" fill="{BAR_FILL}"><title>{escape(label)}: {value:,} {escape(unit)}'
                     '</title></rect>')
    if values:
        for anchor, x, label in (("start", left, values[0][0]), ("end", width - 8, values[-1][0])):
            parts.append(f'<text x="{x}" y="{height - 8}" text-anchor="{anchor}" font-size="11" '
                         f'fill="#1b1f24">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped


@router.get("/{namespace}/{name}/usage")
def usage_page(request: Request, page: RepoPage = Depends(page_repo(Permission.REPO_WRITE))) -> Response:
    ctx = page.ctx
    today = ctx.now.astimezone(timezone.utc).date()
    days = usage_by_day(ctx.session, ctx.repo, today)
    admin = ctx.decide(Permission.REPO_ADMIN).allowed
    context = {
        **base_context(page, "usage"),
        "engine": gateway_service.hosted_of(ctx.session, ctx.repo),
        "days": days,
        # As /api/gateway/usage: every key of the repo for its admins, a writer's own keys for a writer.
        "keys": [key for key in usage_by_key(ctx.session, ctx.repo, today)
                 if admin or key.get("user") == ctx.subject.name],
        "own_keys_only": not admin,
        "totals": DayUsage(today, *(sum(getattr(d, f) for d in days) for f in
                                    ("requests", "refused", "errors", "prompt_tokens", "completion_tokens"))),
        "chart": bar_chart([(d.day.isoformat(), d.requests) for d in days], unit="requests",
                           title=f"Requests per day to {ctx.repo.repo_id}, last {USAGE_DAYS} days",
                           chart_id="usage-chart"),
        "window": USAGE_DAYS,
    }
    return render(request, "usage.html", context)


# ---------------------------------------------------------------------------------------------
# Audit trail


@dataclass(frozen=True)
class AuditFilters:
    """The audit page's GET form, checked; `until` is the last day shown (inclusive)."""

    action: str | None = None
    actor: str | None = None
    since: date | None = None
    until: date | None = None

    @property
    def since_at(self) -> datetime | None:
        return datetime.combine(self.since, time.min, tzinfo=timezone.utc) if self.since else None

    @property
    def until_at(self) -> datetime | None:
        """Exclusive, as `iter_events` takes it: the start of the day after `until`."""
        return datetime.combine(self.until + timedelta(days=1), time.min, tzinfo=timezone.utc) if self.until else None

    def query(self, **extra: Any) -> str:
        values = {"action": self.action, "actor": self.actor, "since": self.since, "until": self.until, **extra}
        return urlencode({key: str(value) for key, value in values.items() if value})

    def where(self, repo_id: str) -> list[Any]:
        clauses = [AuditEvent.repo == repo_id]
        if self.action:
            clauses.append(AuditEvent.action == self.action)
        if self.actor:
            clauses.append(AuditEvent.actor == self.actor)
        if self.since_at:
            clauses.append(AuditEvent.at >= self.since_at)
        if self.until_at:
            clauses.append(AuditEvent.at < self.until_at)
        return clauses


def _day(label: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise BadRequest(f"{label} {value!r} is not a date: give it as YYYY-MM-DD.") from None


def parse_filters(action: str | None, actor: str | None, since: str | None, until: str | None) -> AuditFilters:
    """The form's values, or BadRequest naming the one that is wrong."""
    actor = (actor or "").strip() or None
    if actor is not None and len(actor) > MAX_ACTOR:
        raise BadRequest(f"The actor is longer than {MAX_ACTOR} characters: no account has such a name.")
    filters = AuditFilters((action or "").strip() or None, actor, _day("Since", since), _day("Until", until))
    if filters.since and filters.until and filters.since > filters.until:
        raise BadRequest(f"Since ({filters.since}) is after until ({filters.until}): no event can match.")
    return filters


def _page_number(value: str | None) -> int:
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise BadRequest(f"Page {value!r} is not a page number: give 1, 2, 3, …")
    return int(value)


def details_text(details: dict[str, Any] | None, limit: int = 160) -> str:
    """Details in one line, cut short: a stored prompt can be long, the CSV keeps it whole."""
    if not details:
        return ""
    text = json.dumps(details, sort_keys=True, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def actions_present(session: Session, repo_id: str) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).where(AuditEvent.repo == repo_id)
                                .group_by(AuditEvent.action).order_by(AuditEvent.action)))


def _events_page(session: Session, repo_id: str, filters: AuditFilters, number: int) -> tuple[list[AuditEvent], int]:
    clauses = filters.where(repo_id)
    total = int(session.scalar(select(func.count()).select_from(AuditEvent).where(*clauses)) or 0)
    events = list(session.scalars(select(AuditEvent).where(*clauses).order_by(AuditEvent.seq.desc())
                                  .offset((number - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
    return events, total


def _audit_context(page: RepoPage, filters: AuditFilters, number: int) -> dict[str, Any]:
    ctx = page.ctx
    repo_id = ctx.repo.repo_id
    events, total = _events_page(ctx.session, repo_id, filters, number)
    pages = max(1, -(-total // PAGE_SIZE))
    return {
        "events": [(event, details_text(event.details)) for event in events],
        "total": total,
        "page_number": number,
        "pages": pages,
        "previous_query": filters.query(page=number - 1) if number > 1 else None,
        "next_query": filters.query(page=number + 1) if number < pages else None,
        "csv_query": filters.query(),
        "downloads": audit_log.summarise_downloads(ctx.session, repo_id, since=filters.since_at),
    }


@router.get("/{namespace}/{name}/audit")
def audit_page(request: Request, page: RepoPage = Depends(page_repo(Permission.REPO_ADMIN)),
               action: str | None = None, actor: str | None = None, since: str | None = None,
               until: str | None = None, number: str | None = Query(None, alias="page")) -> Response:
    ctx = page.ctx
    form = {"action": action or "", "actor": actor or "", "since": since or "", "until": until or ""}
    actions = actions_present(ctx.session, ctx.repo.repo_id)
    context: dict[str, Any] = {**base_context(page, "audit"), "form": form, "error": None, "events": [],
                               "downloads": [], "total": 0, "filters": None,
                               "actions": sorted({*actions, form["action"]} - {""})}
    try:
        filters = parse_filters(action, actor, since, until)
        context.update(_audit_context(page, filters, _page_number(number)), filters=filters)
    except BadRequest as exc:
        context["error"] = exc.message
        return render(request, "audit.html", context, status=exc.status_code)
    return render(request, "audit.html", context)


def _csv_cells(row: dict[str, Any]) -> list[Any]:
    # The cells of `auditlog.log.export(fmt="csv")`, so a file from the page and one from
    # `releasehub audit export --format csv` read the same.
    return [json.dumps(row[f], sort_keys=True) if f == "details" and row[f] is not None
            else ("" if row[f] is None else row[f]) for f in audit_log.FIELDS]


def csv_chunks(services: Services, repo_id: str, filters: AuditFilters) -> Iterator[str]:
    """The matching events in seq order, a chunk of rows at a time; its own session, as the response
    is still streaming after the page's session has closed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(audit_log.FIELDS)
    rows = 0
    with services.db.session() as session:
        for row in audit_log.iter_events(session, repo=repo_id, since=filters.since_at, until=filters.until_at,
                                         actions=[filters.action] if filters.action else None):
            if filters.actor and row["actor"] != filters.actor:
                continue  # iter_events has no actor filter
            writer.writerow(_csv_cells(row))
            rows += 1
            if rows % CSV_CHUNK_ROWS == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


@router.get("/{namespace}/{name}/audit.csv")
def audit_csv(page: RepoPage = Depends(page_repo(Permission.REPO_ADMIN)), action: str | None = None,
              actor: str | None = None, since: str | None = None, until: str | None = None) -> Response:
    ctx = page.ctx
    filters = parse_filters(action, actor, since, until)  # BadRequest: the 400 error page
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", ctx.repo.repo_id.replace("/", "--")) + "-audit.csv"
    return StreamingResponse(csv_chunks(ctx.services, ctx.repo.repo_id, filters), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})
