"""OpenAI-compatible gateway for hosted-only releases: keys, tiers, limits, metering.

`Gateway` holds what every request of a server process shares: the rate limiter (in process,
or Redis when RELEASEHUB_REDIS_URL is set, so replicas share one budget), the HTTP client to
the engines, and the metering recorder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from releasehub.services import Services

    from .metering import CallRecorder
    from .ratelimit import Limiter


@dataclass
class Gateway:
    limiter: "Limiter"
    client: httpx.AsyncClient
    recorder: "CallRecorder"

    @classmethod
    def start(cls, services: "Services") -> "Gateway":
        from .metering import CallRecorder
        from .ratelimit import make_limiter

        # httpx logs every request at INFO: one line per proxied call is the audit log's job.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120, connect=10), follow_redirects=False)
        return cls(make_limiter(services.settings.redis_url or None), client, CallRecorder(services.db))

    async def close(self) -> None:
        await self.client.aclose()
        await self.limiter.close()
        self.recorder.close()
