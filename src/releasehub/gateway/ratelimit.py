"""Per-API-key rate limits with OpenAI semantics, kept in process or shared through Redis.

A tier's `Limits` cap four dimensions per subject (the API key id): requests per minute, tokens per
minute, requests per UTC day and requests in flight (concurrency). `Limiter.acquire` checks every
dimension and, only if all have room, charges them all at once; otherwise it charges nothing.

Windows
-------
Fixed windows: the minute windows run from one whole minute of the (injected) clock to the next,
the day window from one UTC midnight to the next (Unix time has no leap seconds, so
``now // 86400`` is the UTC day). Fixed windows were chosen because the check-and-charge is then a
handful of counter reads and increments, trivially atomic in one Lua script, exact, and O(1) in
memory per subject; the cost is the known edge effect that a client may spend a full window's
allowance at the end of one minute and again at the start of the next. `reset_seconds` and
`retry_after` are exact for fixed windows: the time until the window that holds the charge ends
(for tokens an upper bound, since a settlement refund may free room earlier).

Tokens are charged up front from the caller's estimate (prompt plus max_tokens, say) and corrected
by `settle` once the real usage is known, in the window the charge went to; a settlement arriving
after that window has ended changes nothing (the window is gone). A request whose estimate alone
exceeds tokens_per_minute can never fit: it is refused with ``too_large=True`` (answer 400, not 429).

Concurrency slots are leases, not a counter: each granted request holds an entry scored by its
expiry (`lease_seconds`, ten minutes by default) which `release` removes; expired entries are
pruned on every acquire, so slots held by a process that died come back by themselves. A request
that runs longer than the lease keeps its slot by calling `renew` before the lease runs out (the
gateway renews at half the lease); `renew` never brings back a lease that has already expired.

Redis
-----
One Lua script per acquire does the whole check-and-charge, so any number of server processes
sharing one Redis never exceed a limit. Keys are ``releasehub:rl:{<subject>}:...`` -- the braces
are literal and make the subject a Redis Cluster hash tag, so one subject's keys share a slot and a
script may touch them all -- and every key carries a TTL. Window keys are named by window index
(``rpm:<minute>``, ``tpm:<minute>``, ``rpd:<day>``), so a new window starts at zero without any
reset; ``tpm-open:<minute>`` holds the charges not yet settled (which makes `settle` idempotent),
``conc`` is the lease sorted set. Window boundaries come from each process's clock: replicas with
skewed clocks may briefly charge different windows.

Time comes from an injected clock (``now=time.time``) in both backends so tests can move it.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import redis.asyncio

__all__ = [
    "CONCURRENCY_RETRY_AFTER",
    "DEFAULT_LEASE_SECONDS",
    "Decision",
    "Limiter",
    "Limits",
    "MemoryLimiter",
    "RedisLimiter",
    "Reservation",
    "Window",
    "format_duration",
    "make_limiter",
]

MINUTE = 60
DAY = 86_400
DEFAULT_LEASE_SECONDS = 600.0
KEY_PREFIX = "releasehub:rl"
# A refused concurrency slot frees whenever some request finishes, which nobody can predict: this
# is the hint given as retry_after for it.
CONCURRENCY_RETRY_AFTER = 1.0
# Window keys outlive their window by this much, so late settlements still find them harmlessly.
_KEY_GRACE_SECONDS = 60

REQUESTS = "requests"
TOKENS = "tokens"
REQUESTS_PER_DAY = "requests_per_day"
CONCURRENCY = "concurrency"
# Bits of the refusal mask, in the order used to break ties between refused dimensions.
_BITS = ((REQUESTS, 1), (TOKENS, 2), (REQUESTS_PER_DAY, 4), (CONCURRENCY, 8))


@dataclass(frozen=True)
class Limits:
    """A tier's limits; None means unlimited, 0 refuses everything in that dimension."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    requests_per_day: int | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute", "requests_per_day", "concurrency"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative int or None, not {value!r}")

    @property
    def unlimited(self) -> bool:
        return (
            self.requests_per_minute is None
            and self.tokens_per_minute is None
            and self.requests_per_day is None
            and self.concurrency is None
        )


@dataclass(frozen=True)
class Window:
    """What the OpenAI x-ratelimit-* headers report for one dimension."""

    limit: int
    remaining: int
    reset_seconds: float


@dataclass(frozen=True)
class Reservation:
    """What a granted acquire charged, for `settle` and `release`.

    `minute` is the window the tokens went to (None when tokens are unlimited, then nothing is
    settled); `slot` says whether a concurrency lease was taken.
    """

    id: str
    subject: str
    tokens: int
    minute: int | None
    slot: bool


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reservation: Reservation | None
    retry_after: float | None
    refused: str | None
    requests: Window | None
    tokens: Window | None
    too_large: bool = False

    def headers(self) -> dict[str, str]:
        """The OpenAI rate-limit headers, plus retry-after (whole seconds, rounded up) when refused."""
        out: dict[str, str] = {}
        for name, window in (("requests", self.requests), ("tokens", self.tokens)):
            if window is None:
                continue
            out[f"x-ratelimit-limit-{name}"] = str(window.limit)
            out[f"x-ratelimit-remaining-{name}"] = str(window.remaining)
            out[f"x-ratelimit-reset-{name}"] = format_duration(window.reset_seconds)
        if not self.allowed and self.retry_after is not None:
            out["retry-after"] = str(max(1, math.ceil(round(self.retry_after, 6))))
        return out


def format_duration(seconds: float) -> str:
    """OpenAI's reset format (Go's duration string) at millisecond resolution, rounded up.

    0.02 -> "20ms", 1 -> "1s", 17.28 -> "17.28s", 360 -> "6m0s", 3600 -> "1h0m0s".
    """
    ms = max(0, math.ceil(round(seconds * 1000, 6)))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, frac = divmod(rest, 1000)
    text = f"{secs}.{frac:03d}".rstrip("0") + "s" if frac else f"{secs}s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


@runtime_checkable
class Limiter(Protocol):
    async def acquire(self, subject: str, limits: Limits, tokens: int) -> Decision: ...

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None: ...

    async def release(self, reservation: Reservation) -> None: ...

    async def renew(self, reservation: Reservation) -> bool: ...

    @property
    def lease_seconds(self) -> float: ...

    async def close(self) -> None: ...


def make_limiter(
    redis_url: str | None,
    *,
    now: Callable[[], float] = time.time,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> Limiter:
    """A MemoryLimiter when `redis_url` is None (one process only), else a RedisLimiter."""
    if redis_url is None:
        return MemoryLimiter(now=now, lease_seconds=lease_seconds)
    return RedisLimiter(redis_url, now=now, lease_seconds=lease_seconds)


# --- shared between the backends ------------------------------------------------------------------


def _check_args(subject: str, tokens: int) -> None:
    if not isinstance(subject, str) or not subject:
        raise ValueError("subject must be a non-empty string")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise ValueError(f"tokens must be a non-negative int, not {tokens!r}")


def _check_actual(actual_tokens: int) -> None:
    if isinstance(actual_tokens, bool) or not isinstance(actual_tokens, int) or actual_tokens < 0:
        raise ValueError(f"actual_tokens must be a non-negative int, not {actual_tokens!r}")


def _refusal_mask(
    limits: Limits, tokens: int, rpm_used: int, tpm_used: int, rpd_used: int, conc_used: int
) -> int:
    """The same rule the Lua script applies."""
    mask = 0
    if limits.requests_per_minute is not None and rpm_used + 1 > limits.requests_per_minute:
        mask |= 1
    if limits.tokens_per_minute is not None and tpm_used + tokens > limits.tokens_per_minute:
        mask |= 2
    if limits.requests_per_day is not None and rpd_used + 1 > limits.requests_per_day:
        mask |= 4
    if limits.concurrency is not None and conc_used + 1 > limits.concurrency:
        mask |= 8
    return mask


def _decide(
    *,
    now: float,
    limits: Limits,
    tokens: int,
    mask: int,
    rpm_used: int,
    tpm_used: int,
    reservation: Reservation | None,
) -> Decision:
    minute_reset = (math.floor(now / MINUTE) + 1) * MINUTE - now
    day_reset = (math.floor(now / DAY) + 1) * DAY - now
    requests = (
        None
        if limits.requests_per_minute is None
        else Window(limits.requests_per_minute, max(0, limits.requests_per_minute - rpm_used), minute_reset)
    )
    token_window = (
        None
        if limits.tokens_per_minute is None
        else Window(limits.tokens_per_minute, max(0, limits.tokens_per_minute - tpm_used), minute_reset)
    )
    if mask == 0:
        return Decision(True, reservation, None, None, requests, token_window)
    if limits.tokens_per_minute is not None and tokens > limits.tokens_per_minute:
        return Decision(False, None, None, TOKENS, requests, token_window, too_large=True)
    waits = {
        REQUESTS: minute_reset,
        TOKENS: minute_reset,
        REQUESTS_PER_DAY: day_reset,
        CONCURRENCY: CONCURRENCY_RETRY_AFTER,
    }
    # Every dimension must have room before a retry can pass: report the one that frees last.
    refused = max((name for name, bit in _BITS if mask & bit), key=lambda name: waits[name])
    return Decision(False, None, waits[refused], refused, requests, token_window)


def _new_reservation(subject: str, limits: Limits, tokens: int, minute: int) -> Reservation:
    charged = limits.tokens_per_minute is not None
    return Reservation(
        id=uuid.uuid4().hex,
        subject=subject,
        tokens=tokens if charged else 0,
        minute=minute if charged else None,
        slot=limits.concurrency is not None,
    )


# --- in process -----------------------------------------------------------------------------------


@dataclass
class _Subject:
    minute: int = -1
    requests: int = 0
    tokens: int = 0
    open: dict[str, int] = field(default_factory=dict)  # unsettled charges in the current minute
    day: int = -1
    day_requests: int = 0
    leases: dict[str, float] = field(default_factory=dict)  # reservation id -> lease expiry

    def roll(self, minute: int, day: int, now: float) -> None:
        if minute != self.minute:
            self.minute, self.requests, self.tokens = minute, 0, 0
            self.open.clear()
        if day != self.day:
            self.day, self.day_requests = day, 0
        if self.leases:
            for rid in [rid for rid, expiry in self.leases.items() if expiry <= now]:
                del self.leases[rid]


def _granted_unlimited(subject: str, limits: Limits, tokens: int, now: float, minute: int) -> Decision:
    """No dimension is limited: granted without touching any state (or Redis)."""
    return _decide(now=now, limits=limits, tokens=tokens, mask=0, rpm_used=0, tpm_used=0,
                   reservation=_new_reservation(subject, limits, tokens, minute))


class MemoryLimiter:
    """Limits for a single process. State lives in a dict guarded by a lock; no await happens
    inside a critical section, so it is atomic for asyncio tasks and for threads alike."""

    def __init__(
        self, *, now: Callable[[], float] = time.time, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> None:
        self._now = now
        self._lease = float(lease_seconds)
        self._lock = threading.Lock()
        self._subjects: dict[str, _Subject] = {}
        self._swept_minute = -1

    async def acquire(self, subject: str, limits: Limits, tokens: int) -> Decision:
        _check_args(subject, tokens)
        now = self._now()
        minute = math.floor(now / MINUTE)
        if limits.unlimited:
            return _granted_unlimited(subject, limits, tokens, now, minute)
        day = math.floor(now / DAY)
        with self._lock:
            self._sweep(minute, day, now)
            state = self._subjects.get(subject)
            if state is None:
                state = self._subjects[subject] = _Subject()
            state.roll(minute, day, now)
            mask = _refusal_mask(
                limits, tokens, state.requests, state.tokens, state.day_requests, len(state.leases)
            )
            reservation = None
            if mask == 0:
                reservation = _new_reservation(subject, limits, tokens, minute)
                if limits.requests_per_minute is not None:
                    state.requests += 1
                if limits.tokens_per_minute is not None:
                    state.tokens += tokens
                    state.open[reservation.id] = tokens
                if limits.requests_per_day is not None:
                    state.day_requests += 1
                if limits.concurrency is not None:
                    state.leases[reservation.id] = now + self._lease
            rpm_used, tpm_used = state.requests, state.tokens
        return _decide(
            now=now,
            limits=limits,
            tokens=tokens,
            mask=mask,
            rpm_used=rpm_used,
            tpm_used=tpm_used,
            reservation=reservation,
        )

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        _check_actual(actual_tokens)
        if reservation.minute is None:
            return
        with self._lock:
            state = self._subjects.get(reservation.subject)
            if state is None or state.minute != reservation.minute:
                return  # that window is over
            charged = state.open.pop(reservation.id, None)
            if charged is None:
                return  # settled already
            state.tokens = max(0, state.tokens + actual_tokens - charged)

    async def release(self, reservation: Reservation) -> None:
        if not reservation.slot:
            return
        with self._lock:
            state = self._subjects.get(reservation.subject)
            if state is not None:
                state.leases.pop(reservation.id, None)

    async def renew(self, reservation: Reservation) -> bool:
        """Extend a held lease by `lease_seconds` from now; False when it is gone (expired or released)."""
        if not reservation.slot:
            return False
        now = self._now()
        with self._lock:
            state = self._subjects.get(reservation.subject)
            expiry = state.leases.get(reservation.id) if state is not None else None
            if state is None or expiry is None or expiry <= now:
                return False
            state.leases[reservation.id] = now + self._lease
            return True

    @property
    def lease_seconds(self) -> float:
        return self._lease

    async def close(self) -> None:
        with self._lock:
            self._subjects.clear()

    def _sweep(self, minute: int, day: int, now: float) -> None:
        """Once a minute, forget subjects with nothing left in any live window (lock held)."""
        if minute == self._swept_minute:
            return
        self._swept_minute = minute
        for subject in list(self._subjects):
            state = self._subjects[subject]
            state.roll(minute, day, now)
            if not (state.requests or state.tokens or state.day_requests or state.leases):
                del self._subjects[subject]


# --- shared through Redis -------------------------------------------------------------------------

# KEYS: 1 rpm, 2 tpm, 3 tpm-open, 4 rpd, 5 conc
# ARGV: 1 reservation id, 2 tokens, 3 rpm, 4 tpm, 5 rpd, 6 concurrency (-1 = unlimited),
#       7 now, 8 lease expiry, 9 minute-key ttl ms, 10 day-key ttl ms, 11 lease-key ttl ms
# Returns {refusal mask, rpm used, tpm used, rpd used, leases held}, after charging if mask is 0.
_ACQUIRE_LUA = """
local tokens = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local rpd = tonumber(ARGV[5])
local conc = tonumber(ARGV[6])
local rpm_used = tonumber(redis.call('GET', KEYS[1]) or '0')
local tpm_used = tonumber(redis.call('GET', KEYS[2]) or '0')
local rpd_used = tonumber(redis.call('GET', KEYS[4]) or '0')
local conc_used = 0
if conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[7])
  conc_used = redis.call('ZCARD', KEYS[5])
end
local mask = 0
if rpm >= 0 and rpm_used + 1 > rpm then mask = mask + 1 end
if tpm >= 0 and tpm_used + tokens > tpm then mask = mask + 2 end
if rpd >= 0 and rpd_used + 1 > rpd then mask = mask + 4 end
if conc >= 0 and conc_used + 1 > conc then mask = mask + 8 end
if mask == 0 then
  if rpm >= 0 then
    rpm_used = redis.call('INCR', KEYS[1])
    redis.call('PEXPIRE', KEYS[1], ARGV[9])
  end
  if tpm >= 0 then
    tpm_used = redis.call('INCRBY', KEYS[2], tokens)
    redis.call('PEXPIRE', KEYS[2], ARGV[9])
    redis.call('HSET', KEYS[3], ARGV[1], tokens)
    redis.call('PEXPIRE', KEYS[3], ARGV[9])
  end
  if rpd >= 0 then
    rpd_used = redis.call('INCR', KEYS[4])
    redis.call('PEXPIRE', KEYS[4], ARGV[10])
  end
  if conc >= 0 then
    redis.call('ZADD', KEYS[5], ARGV[8], ARGV[1])
    conc_used = conc_used + 1
    redis.call('PEXPIRE', KEYS[5], ARGV[11])
  end
end
return {mask, rpm_used, tpm_used, rpd_used, conc_used}
"""

# KEYS: 1 tpm, 2 tpm-open; ARGV: 1 reservation id, 2 actual tokens. Returns 1 if it settled.
_SETTLE_LUA = """
local charged = redis.call('HGET', KEYS[2], ARGV[1])
if not charged then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  local used = redis.call('INCRBY', KEYS[1], tonumber(ARGV[2]) - tonumber(charged))
  if used < 0 then redis.call('INCRBY', KEYS[1], -used) end
end
return 1
"""

# KEYS: 1 conc; ARGV: 1 reservation id, 2 now, 3 new expiry, 4 lease-key ttl ms.
# Returns 1 if the lease was held (and is now extended), 0 if it was gone or had expired.
_RENEW_LUA = """
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expiry or tonumber(expiry) <= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""


def _arg(limit: int | None) -> int:
    return -1 if limit is None else limit


class RedisLimiter:
    """Limits shared by every process using the same Redis (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        now: Callable[[], float] = time.time,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        prefix: str = KEY_PREFIX,
    ) -> None:
        import redis.asyncio  # imported here so the in-process limiter needs no redis package

        self._redis: redis.asyncio.Redis = redis.asyncio.Redis.from_url(url)
        self._now = now
        self._lease = float(lease_seconds)
        self._prefix = prefix
        self._acquire_script: Any = self._redis.register_script(_ACQUIRE_LUA)
        self._settle_script: Any = self._redis.register_script(_SETTLE_LUA)
        self._renew_script: Any = self._redis.register_script(_RENEW_LUA)

    def key(self, subject: str, *parts: object) -> str:
        return ":".join([f"{self._prefix}:{{{subject}}}", *(str(p) for p in parts)])

    async def acquire(self, subject: str, limits: Limits, tokens: int) -> Decision:
        _check_args(subject, tokens)
        now = self._now()
        minute = math.floor(now / MINUTE)
        if limits.unlimited:
            return _granted_unlimited(subject, limits, tokens, now, minute)
        day = math.floor(now / DAY)
        reservation = _new_reservation(subject, limits, tokens, minute)
        minute_ttl = math.ceil(((minute + 1) * MINUTE - now + _KEY_GRACE_SECONDS) * 1000)
        day_ttl = math.ceil(((day + 1) * DAY - now + _KEY_GRACE_SECONDS) * 1000)
        lease_ttl = math.ceil((self._lease + _KEY_GRACE_SECONDS) * 1000)
        result = await self._acquire_script(
            keys=[
                self.key(subject, "rpm", minute),
                self.key(subject, "tpm", minute),
                self.key(subject, "tpm-open", minute),
                self.key(subject, "rpd", day),
                self.key(subject, "conc"),
            ],
            args=[
                reservation.id,
                tokens,
                _arg(limits.requests_per_minute),
                _arg(limits.tokens_per_minute),
                _arg(limits.requests_per_day),
                _arg(limits.concurrency),
                repr(float(now)),
                repr(float(now + self._lease)),
                minute_ttl,
                day_ttl,
                lease_ttl,
            ],
        )
        mask, rpm_used, tpm_used = (int(v) for v in result[:3])
        return _decide(
            now=now,
            limits=limits,
            tokens=tokens,
            mask=mask,
            rpm_used=rpm_used,
            tpm_used=tpm_used,
            reservation=reservation if mask == 0 else None,
        )

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        _check_actual(actual_tokens)
        if reservation.minute is None:
            return
        await self._settle_script(
            keys=[
                self.key(reservation.subject, "tpm", reservation.minute),
                self.key(reservation.subject, "tpm-open", reservation.minute),
            ],
            args=[reservation.id, actual_tokens],
        )

    async def release(self, reservation: Reservation) -> None:
        if reservation.slot:
            await self._redis.zrem(self.key(reservation.subject, "conc"), reservation.id)

    async def renew(self, reservation: Reservation) -> bool:
        """Extend a held lease by `lease_seconds` from now; False when it is gone (expired or released)."""
        if not reservation.slot:
            return False
        now = self._now()
        lease_ttl = math.ceil((self._lease + _KEY_GRACE_SECONDS) * 1000)
        renewed = await self._renew_script(keys=[self.key(reservation.subject, "conc")],
                                           args=[reservation.id, repr(float(now)), repr(float(now + self._lease)),
                                                 lease_ttl])
        return bool(renewed)

    @property
    def lease_seconds(self) -> float:
        return self._lease

    async def close(self) -> None:
        await self._redis.aclose()
