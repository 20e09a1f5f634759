"""`X-Request-Id` on every HTTP response (huggingface_hub prints it in its error messages)."""

from __future__ import annotations

from uuid import uuid4

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
MAX_LENGTH = 200


def _sane(value: bytes) -> bool:
    """A client's id is echoed only when short and printable ASCII (no header injection, no junk)."""
    return 0 < len(value) <= MAX_LENGTH and all(0x20 <= byte < 0x7F for byte in value)


class RequestIdMiddleware:
    """Outermost pure-ASGI middleware: echoes a sane incoming `X-Request-Id`, else a new uuid4 hex.

    Only `send` is wrapped, and only `http.response.start` is touched (one header appended), so
    the download and gateway fast paths pay one small closure per request and nothing per chunk.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == HEADER:
                if _sane(value):
                    request_id = value
                break
        if request_id is None:
            request_id = uuid4().hex.encode("ascii")
        header = (HEADER, request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers")
                message["headers"] = [*headers, header] if headers else [header]
            await send(message)

        await self.app(scope, receive, send_with_id)
