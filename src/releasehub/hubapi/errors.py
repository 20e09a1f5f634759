"""Turns domain errors into Hub-shaped HTTP errors: status, `X-Error-Code`, `X-Error-Message`.

`huggingface_hub.hf_raise_for_status` reads the headers (HEAD responses have no body), so the
code and message always travel in headers too.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from releasehub.access.decide import repo_not_found
from releasehub.accounts.subject import ANONYMOUS, Subject
from releasehub.errors import RangeNotSatisfiable, ReleasehubError, RepoExists

log = logging.getLogger("releasehub")


def _header_safe(message: str) -> str:
    # Printable ASCII only: a control character (a tab, NUL, \x0b...) from a user-supplied name
    # makes the server drop the whole response.
    text = message.encode("ascii", "replace").decode()
    return "".join(c if " " <= c <= "~" else " " for c in text)[:1000]


def error_response(request: Request, status: int, code: str | None, message: str,
                   extra: dict[str, object] | None = None, more_headers: dict[str, str] | None = None) -> Response:
    headers = {"X-Error-Message": _header_safe(message), **(more_headers or {})}
    if code:
        headers["X-Error-Code"] = code
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    body: dict[str, object] = {"error": message}
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers)


def domain_error_response(request: Request, exc: ReleasehubError) -> Response:
    extra = dict(exc.extra)
    if isinstance(exc, RepoExists) and "url" not in extra:
        extra["url"] = str(request.base_url).rstrip("/")
    more: dict[str, str] = {}
    if isinstance(exc, RangeNotSatisfiable) and isinstance(extra.get("size"), int):
        more["Content-Range"] = f"bytes */{extra['size']}"  # RFC 9110 section 15.5.17: the current length
    return error_response(request, exc.status_code, exc.error_code, exc.message, extra, more)


def unstorable_value_response(request: Request, exc: DataError) -> Response:
    # A value the database cannot hold, such as a NUL character in a name (PostgreSQL refuses
    # NUL in text): the request is at fault, and such a name can never exist.
    log.info("database refused a value on %s %s: %s", request.method, request.url.path, exc.orig)
    return error_response(request, 400, "BadRequest",
                          "The request holds a value that cannot be stored or looked up "
                          "(for example a NUL character in a name or revision).")


def unencodable_text_response(request: Request, exc: UnicodeEncodeError) -> Response | None:
    """A 400 for a lone surrogate (`"\\ud800"` in JSON) that no route check caught; None for other errors.

    Routes name the field (releasehub.text.require_text); this is the fallback, logged so that the
    missing check can be added. Any other encoding error is the server's own and stays a 500.
    """
    if exc.reason != "surrogates not allowed":
        return None
    log.warning("unchecked lone surrogate in a request on %s %s: %s", request.method, request.url.path, exc)
    return error_response(request, 400, "BadRequest",
                          "The request holds text that is not valid Unicode (a lone surrogate escape such "
                          "as \\ud800 in a JSON string); send UTF-8 text.")


_NO_NAMESPACE = (
    re.compile(r"^/api/models/([^/]+)/?$"),
    re.compile(r"^/api/models/([^/]+)/(?:revision|tree|paths-info|refs|commits|preupload|commit|auth-check)(?:/|$)"),
    re.compile(r"^/([^/]+)/resolve/"),
)


def _repo_without_namespace(path: str) -> str | None:
    """A repo id without a namespace (`gpt2`): no route matches it, but it names a repo that does not
    exist here, and clients (`repo_exists`, transformers) need to hear RepoNotFound, not NotFound."""
    for pattern in _NO_NAMESPACE:
        match = pattern.match(path)
        if match is not None and match.group(1) not in ("api",):
            return match.group(1)
    return None


def _repo_not_found(request: Request, repo_id: str) -> Response:
    signed_in = bool(request.headers.get("authorization"))
    decision = repo_not_found(Subject(user_id=0) if signed_in else ANONYMOUS, repo_id)
    return error_response(request, decision.status, decision.error_code, decision.reason)


# Hub features that have routes on the Hub and none here, by the first segments of their paths.
_NOT_SERVED = (
    (re.compile(r"^/api/(datasets|spaces)(/|$)"), "datasets and spaces are not served; releasehub serves model repositories"),
    (re.compile(r"^/api/models/[^/]+/[^/]+/discussions(/|$)"), "pull requests and discussions are not served"),
    (re.compile(r"^/api/collections(/|$)"), "collections are not served"),
    (re.compile(r"^/api/(inference|endpoints)"), "inference endpoints are not served; hosted models answer at /v1"),
    (re.compile(r"^/api/repos/move(/|$)"), "moving (renaming) a repository is not supported; create the new repository "
                                            "and push to it"),
)


def _unserved(request: Request, status: int, detail: str) -> str:
    """The routing layer's bare "Not Found", said so that a client's error names what it asked for."""
    what = f"{request.method} {request.url.path}"
    if status == 405:
        return f"{what}: this method is not allowed on this path (see /docs for the routes served)."
    if status != 404 or detail != "Not Found":
        return detail
    for pattern, reason in _NOT_SERVED:
        if pattern.match(request.url.path):
            return f"{what} is not served: {reason}."
    return f"{what} is not served by releasehub (see /docs for the routes served)."


def install(app: FastAPI) -> None:
    @app.exception_handler(ReleasehubError)
    async def domain_error(request: Request, exc: ReleasehubError) -> Response:
        return domain_error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}" for err in exc.errors()[:5]
        )
        return error_response(request, 422, "BadRequest", f"Invalid request: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            missing = _repo_without_namespace(request.url.path)
            if missing is not None:
                return _repo_not_found(request, missing)
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code)
        return error_response(request, exc.status_code, code, _unserved(request, exc.status_code, str(exc.detail)))

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client closed the connection while sending its body (a cancelled upload, a crash):
        # what it sent was never published, so there is nothing to report but the fact.
        log.info("client disconnected during %s %s; its upload was discarded", request.method, request.url.path)
        return error_response(request, 400, "BadRequest", "The request body was cut off; nothing was stored.")

    @app.exception_handler(DataError)
    async def unstorable_value(request: Request, exc: DataError) -> Response:
        return unstorable_value_response(request, exc)

    @app.exception_handler(UnicodeEncodeError)
    async def unencodable_text(request: Request, exc: UnicodeEncodeError) -> Response:
        response = unencodable_text_response(request, exc)
        if response is not None:
            return response
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(request, 500, "InternalError", "Internal server error; the server log has details.")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "InternalError", "Internal server error; the server log has details.")
