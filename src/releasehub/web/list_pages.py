"""The list of releases (`/models`, and `/` with a short introduction).

Each row is judged by `decide` (REPO_READ) as the API's listing does, but the whole page is
loaded in a constant number of queries (`repos.listing`): a hidden release neither appears nor
counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from releasehub.access import Permission
from releasehub.access.gradient import places
from releasehub.db import utcnow
from releasehub.hubapi.deps import get_session
from releasehub.repos import listing
from releasehub.web.auth import Viewer, page_requires
from releasehub.web.routing import PageRoute
from releasehub.web.templating import render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

LIST_PAGE = 50
SORT_LABELS = {"lastModified": "Last modified", "name": "Name", "created": "Newest"}

T = TypeVar("T")


@dataclass(frozen=True)
class Pager:
    """Where one page sits among all of them, with links that keep the other query parameters."""

    number: int
    pages: int
    total: int
    prev_url: str | None
    next_url: str | None

    @classmethod
    def of(cls, request: Request, number: int, per_page: int, total: int) -> "Pager":
        pages = max(1, -(-total // per_page))

        def url(n: int) -> str:
            query = {k: v for k, v in request.query_params.items() if k != "p"}
            if n > 1:
                query["p"] = str(n)
            return request.url.path + (f"?{urlencode(query)}" if query else "")

        return cls(number, pages, total, url(number - 1) if number > 1 else None,
                   url(number + 1) if number < pages else None)


def paginate(request: Request, items: Sequence[T], number: int, per_page: int) -> tuple[Sequence[T], Pager]:
    """One page (1-based) of items already in memory."""
    start = (number - 1) * per_page
    return items[start:start + per_page], Pager.of(request, number, per_page, len(items))


def _listing_context(request: Request, viewer: Viewer, session: Session, search: str | None,
                     author: str | None, sort: str, number: int) -> dict[str, Any]:
    sort = sort if sort in listing.SORTS else "lastModified"
    search, author = (search or "").strip() or None, (author or "").strip() or None
    found = listing.visible_releases(session, viewer.subject, utcnow(), search=search, author=author, sort=sort,
                                     offset=(number - 1) * LIST_PAGE, limit=LIST_PAGE)
    rows = [{"repo": item.repo, "places": places(item.policy, hosted=item.hosted),
             "last_modified": item.last_modified, "head": item.head_oid} for item in found.items]
    return {"rows": rows, "total": found.total, "search": search or "", "author": author or "", "sort": sort,
            "sorts": SORT_LABELS, "pager": Pager.of(request, number, LIST_PAGE, found.total)}


@router.get("/")
def home_page(request: Request, p: int = Query(1, ge=1, le=100_000),
              sort: str = Query("lastModified", max_length=20),
              viewer: Viewer = Depends(page_requires(Permission.REPO_LIST)),
              session: Session = Depends(get_session)) -> Response:
    context = _listing_context(request, viewer, session, None, None, sort, p)
    return render(request, "models.html", {**context, "home": True})


@router.get("/models")
def models_page(request: Request, search: str | None = Query(None, max_length=200),
                author: str | None = Query(None, max_length=96),
                sort: str = Query("lastModified", max_length=20), p: int = Query(1, ge=1, le=100_000),
                viewer: Viewer = Depends(page_requires(Permission.REPO_LIST)),
                session: Session = Depends(get_session)) -> Response:
    context = _listing_context(request, viewer, session, search, author, sort, p)
    return render(request, "models.html", {**context, "home": False})
