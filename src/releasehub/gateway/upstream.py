"""The gateway's HTTP client to the engines and to the releasers' moderation services.

aiohttp, one session per server process: its C response parser and its connection pool cost a
fraction of httpx's per call, and that cost stays flat as the number of open connections grows
(httpcore's pool walks its connections on every request). Connections to an engine are kept
alive and reused; redirects are never followed (an engine URL is configured, not discovered).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

MAX_CONNECTIONS = 1000  # across all engines of this process
CONNECT_TIMEOUT_S = 10.0
MODERATION_TIMEOUT_S = 10.0


class EngineTimeout(Exception):
    """The engine accepted the connection but did not answer in time."""


class EngineUnreachable(Exception):
    """No answer at all: refused, reset, DNS, or a broken connection (the message names which)."""


class Upstream:
    """Calls engines with keep-alive connections; maps transport failures to two exceptions."""

    def __init__(self) -> None:
        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=0, ttl_dns_cache=60)
        # No cookie jar: an engine's cookies must not travel from one caller's request to another's.
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False, raise_for_status=False,
                                              cookie_jar=aiohttp.DummyCookieJar(),
                                              timeout=aiohttp.ClientTimeout(total=None))
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        """At most `seconds` between two reads (the answer's head included), 10 s to connect."""
        found = self._timeouts.get(seconds)
        if found is None:
            found = self._timeouts[seconds] = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S,
                                                                    sock_read=seconds)
        return found

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> aiohttp.ClientResponse:
        """The engine's answer, its head read; the caller reads or streams the body and releases it."""
        try:
            return await self._session.post(url, data=body, headers=headers, timeout=self.timeout(timeout_s),
                                            allow_redirects=False)
        except asyncio.TimeoutError:
            raise EngineTimeout(url) from None
        except aiohttp.ClientError as exc:
            raise EngineUnreachable(type(exc).__name__) from None

    async def post_json(self, url: str, payload: Any, timeout_s: float = MODERATION_TIMEOUT_S) -> Any:
        """POST JSON, expect a 2xx JSON answer (the moderation hook); any failure is EngineUnreachable."""
        try:
            async with self._session.post(url, json=payload, timeout=self.timeout(timeout_s),
                                          allow_redirects=False) as answer:
                if answer.status >= 300:
                    raise EngineUnreachable(f"HTTP {answer.status}")
                return json.loads(await answer.read())
        except asyncio.TimeoutError:
            raise EngineUnreachable("Timeout") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise EngineUnreachable(type(exc).__name__) from None

    async def close(self) -> None:
        await self._session.close()
