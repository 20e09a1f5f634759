"""Gateway rate limits: both backends (in process, and Redis db 15 when 127.0.0.1:6379 answers).

Coroutines are driven with asyncio.run inside sync tests. Time is a fake clock that starts 15 s
into a minute (45 s before its end) and 6405 s before the end of its UTC day.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from releasehub.gateway.ratelimit import (
    Decision,
    Limiter,
    Limits,
    MemoryLimiter,
    RedisLimiter,
    Window,
    format_duration,
    make_limiter,
)

REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 15
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
MINUTE_START = 1_699_999_980.0  # a whole minute
T0 = MINUTE_START + 15  # 45 s left in the minute
DAY_END = 1_700_006_400.0  # the next UTC midnight


def _redis_reachable() -> bool:
    try:
        import redis  # noqa: F401
    except ImportError:
        return False
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


REDIS_UP = _redis_reachable()
needs_redis = pytest.mark.skipif(not REDIS_UP, reason="no Redis on 127.0.0.1:6379")
BACKENDS = ["memory", pytest.param("redis", marks=needs_redis)]


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _flush_db15() -> None:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    try:
        client.flushdb()
    finally:
        client.close()


Factory = Callable[[], Limiter]


def _raw(limiter: RedisLimiter) -> Any:
    """The limiter's own redis.asyncio client, for looking at the keys it wrote."""
    return limiter._redis


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, Clock, Factory]]:
    """(name, clock, factory): the factory makes a new limiter on the shared clock; for Redis each
    call is a new client with its own connection pool, like another server process."""
    clock = Clock()
    if request.param == "redis":
        _flush_db15()
        yield "redis", clock, lambda: RedisLimiter(REDIS_URL, now=clock)
        _flush_db15()
    else:
        yield "memory", clock, lambda: MemoryLimiter(now=clock)


def run(factory: Factory, scenario: Callable[[Limiter], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        limiter = factory()
        try:
            return await scenario(limiter)
        finally:
            await limiter.close()

    return asyncio.run(main())


# --- pure parts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.02, "20ms"),
        (0.0201, "21ms"),
        (0.999, "999ms"),
        (1, "1s"),
        (17.28, "17.28s"),
        (44.25, "44.25s"),
        (60, "1m0s"),
        (61.5, "1m1.5s"),
        (360, "6m0s"),
        (3600, "1h0m0s"),
        (6405, "1h46m45s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_limits_reject_negative_values() -> None:
    with pytest.raises(ValueError, match="requests_per_minute"):
        Limits(requests_per_minute=-1)
    with pytest.raises(ValueError, match="concurrency"):
        Limits(concurrency=True)  # type: ignore[arg-type]
    assert Limits().unlimited is True
    assert Limits(requests_per_day=0).unlimited is False


def test_make_limiter_picks_the_backend() -> None:
    memory = make_limiter(None)
    assert isinstance(memory, MemoryLimiter)
    assert isinstance(memory, Limiter)
    asyncio.run(memory.close())
    if REDIS_UP:

        async def main() -> None:
            limiter = make_limiter(REDIS_URL)
            assert isinstance(limiter, RedisLimiter)
            assert isinstance(limiter, Limiter)
            await limiter.close()

        asyncio.run(main())


def test_bad_arguments_are_refused(backend: tuple[str, Clock, Factory]) -> None:
    _, _, factory = backend

    async def scenario(limiter: Limiter) -> None:
        with pytest.raises(ValueError, match="subject"):
            await limiter.acquire("", Limits(requests_per_minute=1), 1)
        with pytest.raises(ValueError, match="tokens"):
            await limiter.acquire("k", Limits(requests_per_minute=1), -1)
        decision = await limiter.acquire("k", Limits(tokens_per_minute=10), 1)
        assert decision.reservation is not None
        with pytest.raises(ValueError, match="actual_tokens"):
            await limiter.settle(decision.reservation, -5)

    run(factory, scenario)


# --- requests per minute --------------------------------------------------------------------------


def test_rpm_refusal_with_retry_after_and_headers(backend: tuple[str, Clock, Factory]) -> None:
    _, clock, factory = backend
    limits = Limits(requests_per_minute=3, tokens_per_minute=1000)

    async def scenario(limiter: Limiter) -> list[Decision]:
        out = [await limiter.acquire("key-a", limits, 100) for _ in range(3)]
        clock.t = T0 + 0.75
        out.append(await limiter.acquire("key-a", limits, 100))
        out.append(await limiter.acquire("key-b", limits, 100))  # another key is unaffected
        return out

    first, second, third, refused, other = run(factory, scenario)
    assert [d.allowed for d in (first, second, third)] == [True, True, True]
    assert first.requests == Window(limit=3, remaining=2, reset_seconds=45.0)
    assert first.tokens == Window(limit=1000, remaining=900, reset_seconds=45.0)
    assert third.requests == Window(limit=3, remaining=0, reset_seconds=45.0)
    assert first.headers() == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "45s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "900",
        "x-ratelimit-reset-tokens": "45s",
    }
    assert first.retry_after is None and first.refused is None and first.too_large is False

    assert refused.allowed is False
    assert refused.reservation is None
    assert refused.refused == "requests"
    assert refused.too_large is False
    assert refused.retry_after == 44.25
    # nothing was charged: tokens still show the three granted requests only
    assert refused.tokens == Window(limit=1000, remaining=700, reset_seconds=44.25)
    assert refused.headers() == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "44.25s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "700",
        "x-ratelimit-reset-tokens": "44.25s",
        "retry-after": "45",
    }
    assert other.allowed is True
    assert other.requests == Window(limit=3, remaining=2, reset_seconds=44.25)


def test_window_roll_over(backend: tuple[str, Clock, Factory]) -> None:
    _, clock, factory = backend
    limits = Limits(requests_per_minute=2, tokens_per_minute=100)

    async def scenario(limiter: Limiter) -> list[Decision]:
        out = [await limiter.acquire("k", limits, 50) for _ in range(3)]
        clock.t = MINUTE_START + 59.98  # still the same minute, 20 ms left
        out.append(await limiter.acquire("k", limits, 1))
        clock.t = MINUTE_START + 60  # the next minute starts empty
        out.append(await limiter.acquire("k", limits, 10))
        return out

    a, b, c, late, fresh = run(factory, scenario)
    assert (a.allowed, b.allowed, c.allowed) == (True, True, False)
    assert c.refused == "requests"  # requests and tokens are both full; requests is named first
    assert late.allowed is False
    assert late.retry_after == pytest.approx(0.02)
    assert late.headers()["x-ratelimit-reset-requests"] == "20ms"
    assert late.headers()["retry-after"] == "1"
    assert fresh.allowed is True
    assert fresh.requests == Window(limit=2, remaining=1, reset_seconds=60.0)
    assert fresh.tokens == Window(limit=100, remaining=90, reset_seconds=60.0)
    assert fresh.headers()["x-ratelimit-reset-tokens"] == "1m0s"


# --- tokens ---------------------------------------------------------------------------------------


def test_tokens_charged_up_front_then_refunded(backend: tuple[str, Clock, Factory]) -> None:
    _, _, factory = backend
    limits = Limits(tokens_per_minute=100)

    async def scenario(limiter: Limiter) -> list[Decision]:
        first = await limiter.acquire("k", limits, 80)
        blocked = await limiter.acquire("k", limits, 30)
        assert first.reservation is not None
        await limiter.settle(first.reservation, 50)  # used 30 fewer than charged
        after = await limiter.acquire("k", limits, 30)
        await limiter.settle(first.reservation, 0)  # a second settle does nothing
        again = await limiter.acquire("k", limits, 21)
        return [first, blocked, after, again]

    first, blocked, after, again = run(factory, scenario)
    assert first.allowed is True
    assert first.reservation is not None
    assert first.reservation.tokens == 80
    assert first.tokens == Window(limit=100, remaining=20, reset_seconds=45.0)
    assert first.requests is None
    assert blocked.allowed is False
    assert blocked.refused == "tokens"
    assert blocked.too_large is False
    assert blocked.retry_after == 45.0
    assert blocked.tokens == Window(limit=100, remaining=20, reset_seconds=45.0)
    assert after.allowed is True
    assert after.tokens == Window(limit=100, remaining=20, reset_seconds=45.0)  # 50 + 30 used
    assert again.allowed is False  # 80 used, 21 more would be 101
    assert again.tokens == Window(limit=100, remaining=20, reset_seconds=45.0)
    # unlimited requests: no request headers at all
    assert blocked.headers() == {
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "20",
        "x-ratelimit-reset-tokens": "45s",
        "retry-after": "45",
    }


def test_settle_up_charges_extra(backend: tuple[str, Clock, Factory]) -> None:
    _, _, factory = backend
    limits = Limits(tokens_per_minute=100)

    async def scenario(limiter: Limiter) -> list[Decision]:
        first = await limiter.acquire("k", limits, 40)
        second = await limiter.acquire("k", limits, 10)
        assert first.reservation is not None and second.reservation is not None
        await limiter.settle(first.reservation, 95)  # 55 more than charged: 105 used
        over = await limiter.acquire("k", limits, 0)
        await limiter.settle(second.reservation, 0)  # refund 10: 95 used
        await limiter.settle(second.reservation, 0)  # idempotent: still 95
        fits = await limiter.acquire("k", limits, 5)
        full = await limiter.acquire("k", limits, 1)
        return [over, fits, full]

    over, fits, full = run(factory, scenario)
    assert over.allowed is False
    assert over.refused == "tokens"
    assert over.tokens == Window(limit=100, remaining=0, reset_seconds=45.0)
    assert fits.allowed is True
    assert fits.tokens == Window(limit=100, remaining=0, reset_seconds=45.0)
    assert full.allowed is False
    assert full.refused == "tokens"


def test_settle_after_the_window_ended_changes_nothing(backend: tuple[str, Clock, Factory]) -> None:
    _, clock, factory = backend
    limits = Limits(tokens_per_minute=100)

    async def scenario(limiter: Limiter) -> list[Decision]:
        old = await limiter.acquire("k", limits, 60)
        clock.t = MINUTE_START + 61
        new = await limiter.acquire("k", limits, 70)
        assert old.reservation is not None
        await limiter.settle(old.reservation, 0)  # refund belongs to the old minute: not here
        await limiter.settle(old.reservation, 500)  # nor does an extra charge
        probe = await limiter.acquire("k", limits, 31)
        edge = await limiter.acquire("k", limits, 30)
        return [new, probe, edge]

    new, probe, edge = run(factory, scenario)
    assert new.tokens == Window(limit=100, remaining=30, reset_seconds=59.0)
    assert probe.allowed is False
    assert probe.tokens == Window(limit=100, remaining=30, reset_seconds=59.0)
    assert edge.allowed is True
    assert edge.tokens == Window(limit=100, remaining=0, reset_seconds=59.0)


def test_too_large_request(backend: tuple[str, Clock, Factory]) -> None:
    _, _, factory = backend
    limits = Limits(requests_per_minute=10, tokens_per_minute=100, concurrency=1)

    async def scenario(limiter: Limiter) -> list[Decision]:
        big = await limiter.acquire("k", limits, 101)
        ok = await limiter.acquire("k", limits, 100)  # nothing was charged by the refusal
        return [big, ok]

    big, ok = run(factory, scenario)
    assert big.allowed is False
    assert big.too_large is True
    assert big.refused == "tokens"
    assert big.retry_after is None
    assert big.reservation is None
    assert big.requests == Window(limit=10, remaining=10, reset_seconds=45.0)
    assert big.tokens == Window(limit=100, remaining=100, reset_seconds=45.0)
    assert "retry-after" not in big.headers()
    assert big.headers()["x-ratelimit-remaining-tokens"] == "100"
    assert ok.allowed is True
    assert ok.too_large is False
    assert ok.requests == Window(limit=10, remaining=9, reset_seconds=45.0)
    assert ok.tokens == Window(limit=100, remaining=0, reset_seconds=45.0)


# --- requests per day -----------------------------------------------------------------------------


def test_requests_per_day(backend: tuple[str, Clock, Factory]) -> None:
    _, clock, factory = backend
    limits = Limits(requests_per_minute=100, requests_per_day=2)

    async def scenario(limiter: Limiter) -> list[Decision]:
        out = [await limiter.acquire("k", limits, 0)]
        clock.t = T0 + 3600  # an hour later, same UTC day
        out.append(await limiter.acquire("k", limits, 0))
        out.append(await limiter.acquire("k", limits, 0))
        clock.t = DAY_END  # midnight UTC: a new day
        out.append(await limiter.acquire("k", limits, 0))
        return out

    a, b, refused, tomorrow = run(factory, scenario)
    assert (a.allowed, b.allowed) == (True, True)
    assert refused.allowed is False
    assert refused.refused == "requests_per_day"
    assert refused.retry_after == DAY_END - (T0 + 3600)  # 2805 s
    assert refused.retry_after == 2805.0
    # the minute window was not charged by the refusal
    assert refused.requests == Window(limit=100, remaining=99, reset_seconds=45.0)
    assert refused.headers() == {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "99",
        "x-ratelimit-reset-requests": "45s",
        "retry-after": "2805",
    }
    assert tomorrow.allowed is True
    assert tomorrow.requests == Window(limit=100, remaining=99, reset_seconds=60.0)


def test_refusal_names_the_dimension_that_frees_last(backend: tuple[str, Clock, Factory]) -> None:
    _, _, factory = backend
    limits = Limits(requests_per_minute=1, requests_per_day=1)

    async def scenario(limiter: Limiter) -> Decision:
        await limiter.acquire("k", limits, 0)
        return await limiter.acquire("k", limits, 0)

    refused = run(factory, scenario)
    assert refused.refused == "requests_per_day"  # the minute frees in 45 s, the day in 6405 s
    assert refused.retry_after == 6405.0
    assert refused.headers()["retry-after"] == "6405"


# --- concurrency ----------------------------------------------------------------------------------


def test_concurrency_slots_and_release(backend: tuple[str, Clock, Factory]) -> None:
    _, _, factory = backend
    limits = Limits(concurrency=2)

    async def scenario(limiter: Limiter) -> list[Decision]:
        a = await limiter.acquire("k", limits, 10)
        b = await limiter.acquire("k", limits, 10)
        c = await limiter.acquire("k", limits, 10)
        assert a.reservation is not None
        await limiter.release(a.reservation)
        await limiter.release(a.reservation)  # idempotent: frees one slot, not two
        d = await limiter.acquire("k", limits, 10)
        e = await limiter.acquire("k", limits, 10)
        return [a, b, c, d, e]

    a, b, c, d, e = run(factory, scenario)
    assert (a.allowed, b.allowed, c.allowed, d.allowed, e.allowed) == (True, True, False, True, False)
    assert a.reservation is not None and a.reservation.slot is True
    assert a.reservation.minute is None  # tokens are unlimited: nothing to settle
    assert c.refused == "concurrency"
    assert c.retry_after == 1.0
    assert e.refused == "concurrency"
    # neither per-minute dimension is limited: no window headers, only retry-after
    assert a.requests is None and a.tokens is None
    assert a.headers() == {}
    assert c.headers() == {"retry-after": "1"}


def test_expired_leases_are_reclaimed(backend: tuple[str, Clock, Factory]) -> None:
    """Slots never released come back when their lease (10 min) runs out. With Redis the holder is
    another replica that dies (closes) holding them; in process, a caller that lost its reservation."""
    name, clock, factory = backend
    limits = Limits(concurrency=2)

    async def scenario(limiter: Limiter) -> list[bool]:
        holder = factory() if name == "redis" else limiter
        held = [await holder.acquire("k", limits, 0) for _ in range(2)]
        if holder is not limiter:
            await holder.close()
        assert [d.allowed for d in held] == [True, True]
        out = [(await limiter.acquire("k", limits, 0)).allowed]
        clock.t = T0 + 599.5
        out.append((await limiter.acquire("k", limits, 0)).allowed)
        clock.t = T0 + 600  # the leases taken at T0 expire now
        for _ in range(3):
            out.append((await limiter.acquire("k", limits, 0)).allowed)
        return out

    assert run(factory, scenario) == [False, False, True, True, False]


def test_renewed_leases_outlive_their_first_term(backend: tuple[str, Clock, Factory]) -> None:
    """A long call renews its slot's lease: it still counts after the first ten minutes, and once it
    is released (or lapses unrenewed) renewal cannot bring it back."""
    _, clock, factory = backend
    limits = Limits(concurrency=1)

    async def scenario(limiter: Limiter) -> list[object]:
        assert limiter.lease_seconds == 600
        held = await limiter.acquire("k", limits, 0)
        assert held.reservation is not None
        out: list[object] = []
        clock.t = T0 + 300
        out.append(await limiter.renew(held.reservation))        # lease now ends at T0 + 900
        clock.t = T0 + 700
        out.append((await limiter.acquire("k", limits, 0)).allowed)  # still held past the first term
        clock.t = T0 + 900
        out.append(await limiter.renew(held.reservation))        # expired at T0 + 900: gone for good
        out.append((await limiter.acquire("k", limits, 0)).allowed)
        other = await limiter.acquire("j", limits, 0)
        assert other.reservation is not None
        await limiter.release(other.reservation)
        out.append(await limiter.renew(other.reservation))       # released: not brought back
        out.append((await limiter.acquire("j", limits, 0)).allowed)
        return out

    assert run(factory, scenario) == [True, False, False, True, False, True]


def test_redis_lease_set_is_pruned(request: pytest.FixtureRequest) -> None:
    if not REDIS_UP:
        pytest.skip("no Redis on 127.0.0.1:6379")
    _flush_db15()
    request.addfinalizer(_flush_db15)
    clock = Clock()

    async def main() -> tuple[list[tuple[bytes, float]], list[tuple[bytes, float]], int]:
        limiter = RedisLimiter(REDIS_URL, now=clock, lease_seconds=30)
        try:
            a = await limiter.acquire("k", Limits(concurrency=5), 0)
            clock.t = T0 + 10
            b = await limiter.acquire("k", Limits(concurrency=5), 0)
            assert a.reservation is not None and b.reservation is not None
            key = limiter.key("k", "conc")
            before = await _raw(limiter).zrange(key, 0, -1, withscores=True)
            clock.t = T0 + 30
            await limiter.acquire("k", Limits(concurrency=5), 0)
            after = await _raw(limiter).zrange(key, 0, -1, withscores=True)
            ttl = await _raw(limiter).pttl(key)
            return ([(m, s) for m, s in before], [(m, s) for m, s in after], ttl)
        finally:
            await limiter.close()

    before, after, ttl = asyncio.run(main())
    assert [score for _, score in before] == [T0 + 30, T0 + 40]
    assert [score for _, score in after] == [T0 + 40, T0 + 60]  # the first lease was pruned
    assert before[1][0] == after[0][0]
    assert 89_000 < ttl <= 90_000  # lease 30 s + 60 s grace


def test_redis_keys_are_namespaced_with_ttls(request: pytest.FixtureRequest) -> None:
    if not REDIS_UP:
        pytest.skip("no Redis on 127.0.0.1:6379")
    _flush_db15()
    request.addfinalizer(_flush_db15)
    clock = Clock()
    minute, day = int(T0 // 60), int(T0 // 86400)

    async def main() -> dict[str, int]:
        limiter = RedisLimiter(REDIS_URL, now=clock)
        try:
            await limiter.acquire(
                "key-1",
                Limits(requests_per_minute=5, tokens_per_minute=50, requests_per_day=9, concurrency=3),
                7,
            )
            keys = sorted(k.decode() for k in await _raw(limiter).keys("*"))
            return {k: await _raw(limiter).pttl(k) for k in keys}
        finally:
            await limiter.close()

    ttls = asyncio.run(main())
    assert sorted(ttls) == sorted(
        [
            f"releasehub:rl:{{key-1}}:rpm:{minute}",
            f"releasehub:rl:{{key-1}}:tpm:{minute}",
            f"releasehub:rl:{{key-1}}:tpm-open:{minute}",
            f"releasehub:rl:{{key-1}}:rpd:{day}",
            "releasehub:rl:{key-1}:conc",
        ]
    )
    assert 104_000 < ttls[f"releasehub:rl:{{key-1}}:rpm:{minute}"] <= 105_000  # 45 s + 60 s grace
    assert 104_000 < ttls[f"releasehub:rl:{{key-1}}:tpm-open:{minute}"] <= 105_000
    assert 6_464_000 < ttls[f"releasehub:rl:{{key-1}}:rpd:{day}"] <= 6_465_000
    assert 659_000 < ttls["releasehub:rl:{key-1}:conc"] <= 660_000


def test_redis_survives_a_flushed_script_cache(request: pytest.FixtureRequest) -> None:
    """EVALSHA falls back to loading the script when Redis lost it (NOSCRIPT)."""
    if not REDIS_UP:
        pytest.skip("no Redis on 127.0.0.1:6379")
    _flush_db15()
    request.addfinalizer(_flush_db15)
    clock = Clock()

    async def main() -> list[bool]:
        limiter = RedisLimiter(REDIS_URL, now=clock)
        try:
            out = [(await limiter.acquire("k", Limits(requests_per_minute=2), 0)).allowed]
            await _raw(limiter).script_flush()
            out.append((await limiter.acquire("k", Limits(requests_per_minute=2), 0)).allowed)
            out.append((await limiter.acquire("k", Limits(requests_per_minute=2), 0)).allowed)
            return out
        finally:
            await limiter.close()

    assert asyncio.run(main()) == [True, True, False]


# --- unlimited ------------------------------------------------------------------------------------


def test_unlimited_dimensions_have_no_headers(backend: tuple[str, Clock, Factory]) -> None:
    _, _, factory = backend

    async def scenario(limiter: Limiter) -> list[Decision]:
        nothing = [await limiter.acquire("k", Limits(), 10_000) for _ in range(3)]
        only_rpm = await limiter.acquire("k", Limits(requests_per_minute=5), 10_000)
        reservation = nothing[0].reservation
        assert reservation is not None
        await limiter.settle(reservation, 5)  # nothing to settle, nothing to release
        await limiter.release(reservation)
        return [*nothing, only_rpm]

    *nothing, only_rpm = run(factory, scenario)
    for decision in nothing:
        assert decision.allowed is True
        assert decision.requests is None and decision.tokens is None
        assert decision.headers() == {}
        assert decision.reservation is not None
        assert (decision.reservation.tokens, decision.reservation.minute, decision.reservation.slot) == (
            0,
            None,
            False,
        )
    assert only_rpm.headers() == {
        "x-ratelimit-limit-requests": "5",
        "x-ratelimit-remaining-requests": "4",
        "x-ratelimit-reset-requests": "45s",
    }


def test_zero_limit_refuses_everything(backend: tuple[str, Clock, Factory]) -> None:
    _, _, factory = backend

    async def scenario(limiter: Limiter) -> Decision:
        return await limiter.acquire("k", Limits(requests_per_minute=0), 0)

    refused = run(factory, scenario)
    assert refused.allowed is False
    assert refused.refused == "requests"
    assert refused.requests == Window(limit=0, remaining=0, reset_seconds=45.0)


# --- atomicity ------------------------------------------------------------------------------------


def test_memory_backend_grants_exactly_the_limit_under_concurrent_tasks() -> None:
    clock = Clock()
    limits = Limits(requests_per_minute=50, tokens_per_minute=10_000, concurrency=40)

    async def main() -> tuple[int, int, dict[str | None, int]]:
        limiter = MemoryLimiter(now=clock)

        async def one(i: int) -> Decision:
            await asyncio.sleep(0)
            return await limiter.acquire("shared", limits, 100)

        decisions = await asyncio.gather(*(one(i) for i in range(200)))
        refused: dict[str | None, int] = {}
        for d in decisions:
            refused[d.refused] = refused.get(d.refused, 0) + 1
        granted = [d for d in decisions if d.allowed]
        tokens_left = min(d.tokens.remaining for d in decisions if d.tokens is not None)
        await limiter.close()
        return len(granted), tokens_left, refused

    granted, tokens_left, refused = asyncio.run(main())
    assert granted == 40  # concurrency binds first: 40 slots, none released
    assert tokens_left == 10_000 - 40 * 100
    assert refused == {None: 40, "concurrency": 160}


def test_memory_backend_rpm_exact_under_concurrent_tasks() -> None:
    clock = Clock()

    async def main() -> int:
        limiter = MemoryLimiter(now=clock)
        limits = Limits(requests_per_minute=50)

        async def one() -> bool:
            await asyncio.sleep(0)
            return (await limiter.acquire("shared", limits, 1)).allowed

        results = await asyncio.gather(*(one() for _ in range(200)))
        await limiter.close()
        return sum(results)

    assert asyncio.run(main()) == 50


@needs_redis
def test_two_redis_replicas_never_exceed_the_limit(request: pytest.FixtureRequest) -> None:
    _flush_db15()
    request.addfinalizer(_flush_db15)
    clock = Clock()
    limits = Limits(requests_per_minute=50, tokens_per_minute=100_000)

    async def main() -> tuple[int, int, int, int]:
        replicas = [RedisLimiter(REDIS_URL, now=clock), RedisLimiter(REDIS_URL, now=clock)]
        assert replicas[0]._redis.connection_pool is not replicas[1]._redis.connection_pool
        try:
            decisions = await asyncio.gather(
                *(replicas[i % 2].acquire("shared", limits, 7) for i in range(200))
            )
            granted = [d for d in decisions if d.allowed]
            per_replica = sum(1 for i, d in enumerate(decisions) if d.allowed and i % 2 == 0)
            minute = int(T0 // 60)
            rpm = int(await _raw(replicas[0]).get(replicas[0].key("shared", "rpm", minute)))
            tpm = int(await _raw(replicas[1]).get(replicas[1].key("shared", "tpm", minute)))
            return len(granted), per_replica, rpm, tpm
        finally:
            for replica in replicas:
                await replica.close()

    granted, from_first, rpm, tpm = asyncio.run(main())
    assert granted == 50
    assert 0 < from_first < 50  # both replicas were granted some
    assert rpm == 50
    assert tpm == 50 * 7


@needs_redis
def test_two_redis_replicas_share_concurrency_and_tokens(request: pytest.FixtureRequest) -> None:
    _flush_db15()
    request.addfinalizer(_flush_db15)
    clock = Clock()

    async def main() -> tuple[int, int, int, int]:
        replicas = [RedisLimiter(REDIS_URL, now=clock), RedisLimiter(REDIS_URL, now=clock)]
        try:
            conc = await asyncio.gather(
                *(replicas[i % 2].acquire("c", Limits(concurrency=7), 0) for i in range(100))
            )
            tokens = await asyncio.gather(
                *(replicas[i % 2].acquire("t", Limits(tokens_per_minute=1000), 30) for i in range(100))
            )
            # give every slot back from the replica that did not take it: slots are shared
            for i, d in enumerate(conc):
                if d.reservation is not None:
                    await replicas[(i + 1) % 2].release(d.reservation)
            held = await _raw(replicas[0]).zcard(replicas[0].key("c", "conc"))
            return (
                sum(d.allowed for d in conc),
                sum(d.allowed for d in tokens),
                min(d.tokens.remaining for d in tokens if d.tokens is not None),
                held,
            )
        finally:
            for replica in replicas:
                await replica.close()

    assert asyncio.run(main()) == (7, 33, 10, 0)  # 33 * 30 = 990 of 1000 tokens
