"""OpenAI-compatible gateway for hosted-only releases: keys, tiers, limits, metering.

`Gateway` holds what every request of a server process shares: the rate limiter (in process,
or Redis when RELEASEHUB_REDIS_URL is set, so replicas share one budget), the HTTP client to
the engines, and the metering recorder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from releasehub.services import Services

    from .metering import CallRecorder
    from .ratelimit import Limiter
    from .upstream import Upstream


@dataclass
class Gateway:
    limiter: "Limiter"
    upstream: "Upstream"
    recorder: "CallRecorder"

    @classmethod
    def start(cls, services: "Services") -> "Gateway":
        """Called in the server's lifespan (the engines' client needs the running event loop)."""
        from .metering import CallRecorder
        from .ratelimit import make_limiter
        from .upstream import Upstream

        settings = services.settings
        limiter = make_limiter(settings.redis_url or None, lease_seconds=settings.gateway_lease_seconds)
        return cls(limiter, Upstream(), CallRecorder(services.db))

    async def close(self) -> None:
        await self.upstream.close()
        await self.limiter.close()
        self.recorder.close()
