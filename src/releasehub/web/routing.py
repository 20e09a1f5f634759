"""Page routes: errors become HTML pages, and every page carries the same security headers.

`PageRoute` is the route class of every web router. A domain error raised while a page is
built (a refusal from `decide`, a missing revision, a bad form) is rendered as an error page
with the same status the API would give, except that a repo that is missing or hidden is a 404
page for everyone: the same status, text and headers whether it exists or not.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Coroutine

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError

from releasehub.errors import ReleasehubError
from releasehub.web.templating import render

log = logging.getLogger("releasehub")

# No script runs on these pages; styles and images come from this server only; a page cannot be
# framed; forms post only here. A card's hostile markup, were it to get through sanitising, still
# could not run or phone home.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # Pages differ per viewer: no shared cache may keep them.
    "Cache-Control": "private, no-cache",
    "Vary": "Cookie, Authorization",
}

TITLES = {400: "Bad request", 401: "Sign in required", 403: "Forbidden", 404: "Not found", 409: "Conflict",
          413: "Too large", 422: "Bad request", 416: "Bad range"}


def error_page(request: Request, status: int, code: str | None, message: str) -> Response:
    if code == "RepoNotFound":
        status = 404  # signed out or in, hidden or missing: one page (the API's 401 is for clients)
    context: dict[str, Any] = {"status": status, "code": code, "message": message,
                               "title": TITLES.get(status, "Error")}
    response = render(request, "error.html", context, status=status)
    if code:
        response.headers["X-Error-Code"] = code
    return response


def with_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class PageRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except ReleasehubError as exc:
                response = error_page(request, exc.status_code, exc.error_code, exc.message)
            except RequestValidationError as exc:
                problems = "; ".join(str(err.get("msg")) for err in exc.errors()[:3])
                response = error_page(request, 400, "BadRequest", f"The request is not valid: {problems}")
            except DataError:
                response = error_page(request, 400, "BadRequest", "The request holds a value that cannot be looked up.")
            return with_security_headers(response)

        return page_handler
