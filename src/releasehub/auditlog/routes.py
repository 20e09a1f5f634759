"""The audit trail over HTTP: what `releasehub audit export` and `audit report` call.

- `GET /api/models/{repo}/audit`: the repo's events, for its admins (`repo_access(REPO_ADMIN)`);
- `GET /api/audit/export`: the whole log, for server admins (`Permission.SERVER_ADMIN`);
- `GET /api/models/{repo}/audit/downloads`: downloads per revision and file, for the repo's admins.

Exports are streamed, in seq order, in exactly the text `auditlog.log.export` writes (JSON Lines, or
CSV with its header), so a file saved from the API and one written on the server read the same.
`audit verify` and `audit checkpoint` of the raw table stay on the database (see `cli/auditlog.py`).
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any, Iterator

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from releasehub.access import Permission
from releasehub.accounts.service import Subject
from releasehub.auditlog import log
from releasehub.errors import BadRequest
from releasehub.hubapi.deps import RepoContext, get_services, repo_access, requires
from releasehub.services import Services

router = APIRouter(tags=["audit"])

CHUNK_LINES = 500  # lines per chunk of a streamed export: few writes, little memory
MEDIA_TYPES = {"jsonl": "application/x-ndjson; charset=utf-8", "csv": "text/csv; charset=utf-8"}


def _utc(at: datetime | None) -> datetime | None:
    """A time without a zone is UTC, as the log stores it."""
    return at.replace(tzinfo=timezone.utc) if at is not None and at.tzinfo is None else at


def _chunks(services: Services, repo: str | None, since: datetime | None, until: datetime | None,
            actions: list[str] | None, fmt: str) -> Iterator[str]:
    # Its own session: the response is still streaming after the request's session has closed.
    with services.db.session() as session:
        batch: list[str] = []
        for line in log.export_lines(session, repo=repo, since=since, until=until, actions=actions, fmt=fmt):
            batch.append(line)
            if len(batch) >= CHUNK_LINES:
                yield "".join(batch)
                batch.clear()
        if batch:
            yield "".join(batch)


def _export(services: Services, repo: str | None, since: datetime | None, until: datetime | None,
            actions: list[str], fmt: str) -> StreamingResponse:
    if fmt not in MEDIA_TYPES:
        raise BadRequest(f"format must be jsonl or csv, not {fmt[:20]!r}.")
    chunks = _chunks(services, repo, _utc(since), _utc(until), actions or None, fmt)
    # The first chunk before the answer starts: a value the database refuses is an error status
    # (the handlers' 400), not a 200 cut short.
    first = next(chunks, "")
    return StreamingResponse(itertools.chain([first], chunks), media_type=MEDIA_TYPES[fmt])


Since = Query(None, description="From this instant (ISO 8601; UTC when it has no zone).")
Until = Query(None, description="Until this instant, exclusive.")
Actions = Query([], max_length=50, description="Only these actions, e.g. file.downloaded (repeat).")
Format = Query("jsonl", alias="format", max_length=20, description="jsonl or csv.")


@router.get("/api/models/{namespace}/{name}/audit")
def repo_events(since: datetime | None = Since, until: datetime | None = Until, action: list[str] = Actions,
                fmt: str = Format, ctx: RepoContext = Depends(repo_access(Permission.REPO_ADMIN))) -> StreamingResponse:
    """The repo's audit events in seq order, as JSON Lines or CSV (the repo's admins)."""
    return _export(ctx.services, ctx.repo.repo_id, since, until, action, fmt)


@router.get("/api/audit/export")
def all_events(since: datetime | None = Since, until: datetime | None = Until, action: list[str] = Actions,
               fmt: str = Format, services: Services = Depends(get_services),
               _: Subject = Depends(requires(Permission.SERVER_ADMIN))) -> StreamingResponse:
    """Every audit event in seq order, as JSON Lines or CSV (server admins)."""
    return _export(services, None, since, until, action, fmt)


@router.get("/api/models/{namespace}/{name}/audit/downloads")
def downloads(since: datetime | None = Since,
              ctx: RepoContext = Depends(repo_access(Permission.REPO_ADMIN))) -> list[dict[str, Any]]:
    """Downloads per revision and file, most downloaded first: count, bytes, distinct downloaders."""
    rows = log.summarise_downloads(ctx.session, ctx.repo.repo_id, _utc(since))
    return [{"revision": r.revision, "path": r.path, "downloads": r.downloads, "downloaders": len(r.actors),
             "bytes": r.bytes} for r in rows]
