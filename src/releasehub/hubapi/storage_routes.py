"""The collector over HTTP, for server admins: what `releasehub gc` calls."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from releasehub import auditlog as audit
from releasehub import collector
from releasehub.access import Permission
from releasehub.accounts.service import Subject
from releasehub.hubapi.deps import client_ip, get_services, requires
from releasehub.services import Services

router = APIRouter(tags=["admin"])


@router.post("/api/admin/gc")
async def run_gc(
    request: Request, dry_run: bool = Query(False), grace_seconds: int | None = Query(None, ge=0, le=10 * 365 * 86400),
    retention_seconds: int | None = Query(None, ge=0, le=10 * 365 * 86400),
    services: Services = Depends(get_services), subject: Subject = Depends(requires(Permission.SERVER_ADMIN)),
) -> dict[str, Any]:
    """Remove unreferenced blobs and upload leftovers older than the grace period, and Xet xorbs no
    file uses (with the records of Xet files never committed) older than the retention (server admins)."""
    result = await run_in_threadpool(lambda: collector.collect(services, grace_seconds,
                                                               retention_seconds=retention_seconds, dry_run=dry_run))
    if not dry_run:
        def record() -> None:
            with services.db.session() as session:
                audit.record(session, "storage.collected", actor=subject.name, ip=client_ip(request),
                             details={k: v for k, v in result.as_dict().items()
                                      if k not in ("removed", "removed_xorbs")})
        await run_in_threadpool(record)
    return result.as_dict()
