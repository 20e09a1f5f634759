"""Xet uploads assembled while their xorbs arrive (`releasehub.xet.assembly`), on a local store:
the order xorbs are appended in, the prefix a shard can continue from, and every way an assembly
is refused or dropped."""

from __future__ import annotations

import hashlib
import io
import random
import time
from pathlib import Path

import pytest

from releasehub.storage import LocalBlobStore
from releasehub.xet import assembly as assembly_module
from releasehub.xet.assembly import Assemblies
from releasehub.errors import BadRequest
from releasehub.xet.hashing import chunk_hash, hash_from_hex, hash_hex, xorb_hash
from releasehub.xet.xorb import NONE, XorbIndex, build_xorb, read_xorb

LIMIT = 1 << 30


class Xorb:
    def __init__(self, seed: int, chunks: int = 3) -> None:
        rng = random.Random(seed)
        self.chunks = [rng.randbytes(rng.randrange(1_000, 60_000)) for _ in range(chunks)]
        self.body = build_xorb(self.chunks, NONE)
        raw = xorb_hash([(chunk_hash(c), len(c)) for c in self.chunks])
        self.hash = hash_hex(raw)
        self.index: XorbIndex = read_xorb(io.BytesIO(self.body), raw)
        self.content = b"".join(self.chunks)
        self.term = (self.hash, 0, len(self.chunks))


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs", tmp_path / "tmp", tmp_path / "objects")


def stored(store: LocalBlobStore, tmp_path: Path, *xorbs: Xorb) -> None:
    for xorb in xorbs:
        spooled = tmp_path / f"spool-{xorb.hash}"
        spooled.write_bytes(xorb.body)
        store.put_object("xorbs", xorb.hash, spooled)


def finished(writer, content: bytes) -> None:  # type: ignore[no-untyped-def]
    writer.expected_size = len(content)
    assert writer.finish(hashlib.sha256(content).hexdigest()) == hashlib.sha256(content).hexdigest()
    writer.abort()


def test_xorbs_are_appended_in_the_order_their_requests_began(store: LocalBlobStore, tmp_path: Path) -> None:
    a, b, c = Xorb(1), Xorb(2), Xorb(3)
    stored(store, tmp_path, a, b, c)
    live = Assemblies(4)
    tickets = [live.ticket(store, LIMIT, 1, 2, "session") for _ in range(3)]
    assert all(t is not None for t in tickets)
    # Verified out of order: c first, then a, then b; appended a, b, c all the same.
    tickets[2].ready(c.hash, c.index)  # type: ignore[union-attr]
    tickets[0].ready(a.hash, a.index)  # type: ignore[union-attr]
    tickets[1].ready(b.hash, b.index)  # type: ignore[union-attr]
    taken = live.take(1, 2, "session")
    assert taken is not None and len(live) == 0
    got = taken.complete([a.term, b.term, c.term])
    assert got is not None
    writer, done = got
    assert done == 3
    finished(writer, a.content + b.content + c.content)


def test_a_file_in_another_order_continues_from_the_common_prefix(store: LocalBlobStore, tmp_path: Path) -> None:
    """The client sent its last two xorbs at once and the later one began first: the writer is
    rewound to the end of the prefix the file shares with the assembly."""
    a, b, c = Xorb(4), Xorb(5), Xorb(6)
    stored(store, tmp_path, a, b, c)
    live = Assemblies(4)
    for xorb in (a, c, b):
        ticket = live.ticket(store, LIMIT, 1, 2, "s")
        assert ticket is not None
        ticket.ready(xorb.hash, xorb.index)
    taken = live.take(1, 2, "s")
    assert taken is not None
    got = taken.complete([a.term, b.term, c.term])
    assert got is not None
    writer, done = got
    assert done == 1 and writer.size == len(a.content)
    writer.write(b.content)
    writer.write(c.content)
    finished(writer, a.content + b.content + c.content)


def test_a_file_that_does_not_start_with_the_first_xorb_gets_nothing(store: LocalBlobStore, tmp_path: Path) -> None:
    a, b = Xorb(7), Xorb(8)
    stored(store, tmp_path, a, b)
    live = Assemblies(4)
    for xorb in (a, b):
        ticket = live.ticket(store, LIMIT, 1, 2, "s")
        assert ticket is not None
        ticket.ready(xorb.hash, xorb.index)
    taken = live.take(1, 2, "s")
    assert taken is not None
    assert taken.complete([b.term, a.term]) is None
    assert taken.complete([(a.hash, 0, 1)]) is None  # part of a xorb is not the xorb: and it was dropped anyway
    assert list((tmp_path / "tmp").iterdir()) == []  # its temporary file is gone


def test_a_failed_xorb_drops_the_assembly(store: LocalBlobStore, tmp_path: Path) -> None:
    a, b = Xorb(9), Xorb(10)
    stored(store, tmp_path, a, b)
    live = Assemblies(4)
    first, second = live.ticket(store, LIMIT, 1, 2, "s"), live.ticket(store, LIMIT, 1, 2, "s")
    assert first is not None and second is not None
    first.ready(a.hash, a.index)
    second.failed()  # refused: its place stays empty
    second.ready(b.hash, b.index)  # (a ticket answers once; this is ignored by the broken assembly)
    assert live.ticket(store, LIMIT, 1, 2, "s") is None  # no more tickets in a broken assembly
    taken = live.take(1, 2, "s")
    assert taken is not None and taken.complete([a.term, b.term]) is None


def test_a_missing_xorb_drops_the_assembly(store: LocalBlobStore, tmp_path: Path) -> None:
    a = Xorb(11)  # never stored: the appending thread cannot read it
    live = Assemblies(4)
    ticket = live.ticket(store, LIMIT, 1, 2, "s")
    assert ticket is not None
    ticket.ready(a.hash, a.index)
    taken = live.take(1, 2, "s")
    assert taken is not None and taken.complete([a.term]) is None


def test_an_assembly_larger_than_the_largest_file_is_dropped(store: LocalBlobStore, tmp_path: Path) -> None:
    a = Xorb(12)
    stored(store, tmp_path, a)
    live = Assemblies(4)
    ticket = live.ticket(store, len(a.content) - 1, 1, 2, "s")
    assert ticket is not None
    ticket.ready(a.hash, a.index)
    taken = live.take(1, 2, "s")
    assert taken is not None and taken.complete([a.term]) is None


def test_sessions_are_bounded_and_keyed_by_repo_and_user(store: LocalBlobStore, tmp_path: Path) -> None:
    assert Assemblies(0).ticket(store, LIMIT, 1, 2, "s") is None  # off
    live = Assemblies(2)
    assert live.ticket(store, LIMIT, 1, 2, None) is None  # no session header
    assert live.ticket(store, LIMIT, 1, 2, "x" * 129) is None  # not a session id a client sends
    assert live.ticket(store, LIMIT, 1, 2, "s") is not None
    assert live.ticket(store, LIMIT, 1, 3, "s") is not None  # another user, same session id: another assembly
    assert len(live) == 2
    assert live.ticket(store, LIMIT, 9, 2, "t") is None  # full: this session is reconstructed instead
    assert live.take(1, 9, "s") is None and live.take(1, 2, None) is None
    live.close()
    assert len(live) == 0 and list((tmp_path / "tmp").iterdir()) == []


def test_idle_assemblies_are_dropped_for_new_sessions(store: LocalBlobStore, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    a = Xorb(13)
    stored(store, tmp_path, a)
    live = Assemblies(1)
    ticket = live.ticket(store, LIMIT, 1, 2, "old")
    assert ticket is not None
    assert live.ticket(store, LIMIT, 1, 2, "new") is None  # full, and "old" has a xorb in flight
    old = live._live[(1, 2, "old")]
    ticket.ready(a.hash, a.index)
    monkeypatch.setattr(assembly_module, "IDLE_SECONDS", 0.0)
    deadline = time.monotonic() + 10
    fresh = None
    while fresh is None and time.monotonic() < deadline:  # once "old" has appended its xorb, it is idle
        fresh = live.ticket(store, LIMIT, 1, 2, "new")
        time.sleep(0.01)
    assert fresh is not None and live.take(1, 2, "old") is None  # "old" was dropped for "new"
    assert old.complete([a.term]) is None  # dropped: its writer is gone
    live.close()


def test_a_shard_waits_for_xorbs_still_in_flight(store: LocalBlobStore, tmp_path: Path) -> None:
    import threading

    a, b = Xorb(14), Xorb(15)
    stored(store, tmp_path, a, b)
    live = Assemblies(4)
    first, second = live.ticket(store, LIMIT, 1, 2, "s"), live.ticket(store, LIMIT, 1, 2, "s")
    assert first is not None and second is not None
    first.ready(a.hash, a.index)
    taken = live.take(1, 2, "s")
    assert taken is not None
    later = threading.Timer(0.2, second.ready, (b.hash, b.index))
    later.start()
    got = taken.complete([a.term, b.term])
    later.join()
    assert got is not None and got[1] == 2
    finished(got[0], a.content + b.content)
    stuck = Assemblies(4)
    never = stuck.ticket(store, LIMIT, 1, 2, "s")  # a request that neither finishes nor fails
    assert never is not None
    held = stuck.take(1, 2, "s")
    assert held is not None and held.complete([a.term], timeout=0.1) is None  # gives up, reconstructs


def test_a_xorb_verified_in_its_turn_is_appended_by_its_own_request(store: LocalBlobStore, tmp_path: Path) -> None:
    """The request whose xorb is next writes its data while verifying it (read_xorb's sink); one
    that is not next leaves it to the thread, which reads the stored xorb afterwards."""
    a, b, c = Xorb(16), Xorb(17), Xorb(18)
    stored(store, tmp_path, a, b, c)
    live = Assemblies(4)
    first, second, third = (live.ticket(store, LIMIT, 1, 2, "s") for _ in range(3))
    assert first is not None and second is not None and third is not None
    assert second.sink() is None  # not its turn: the first is not appended yet
    sink = first.sink()
    assert sink is not None and first.sink() is None  # one direct writer at a time
    assert read_xorb(io.BytesIO(a.body), hash_from_hex(a.hash), sink) == a.index
    first.ready(a.hash, a.index)
    deadline = time.monotonic() + 10
    while (sink := second.sink()) is None and time.monotonic() < deadline:
        time.sleep(0.01)  # its turn as soon as the first is recorded
    assert sink is not None
    read_xorb(io.BytesIO(b.body), hash_from_hex(b.hash), sink)
    second.ready(b.hash, b.index)
    third.ready(c.hash, c.index)  # through the thread
    taken = live.take(1, 2, "s")
    assert taken is not None
    got = taken.complete([a.term, b.term, c.term])
    assert got is not None and got[1] == 3
    finished(got[0], a.content + b.content + c.content)


def test_a_direct_append_past_the_limit_or_refused_drops_the_assembly_not_the_xorb(
        store: LocalBlobStore, tmp_path: Path) -> None:
    a, b = Xorb(19), Xorb(20)
    stored(store, tmp_path, a, b)
    small = Assemblies(4)
    ticket = small.ticket(store, len(a.content) - 1, 1, 2, "s")
    assert ticket is not None
    sink = ticket.sink()
    assert sink is not None
    assert read_xorb(io.BytesIO(a.body), hash_from_hex(a.hash), sink) == a.index  # no error for the xorb
    ticket.ready(a.hash, a.index)
    taken = small.take(1, 2, "s")
    assert taken is not None and taken.complete([a.term]) is None
    live = Assemblies(4)
    ticket = live.ticket(store, LIMIT, 1, 2, "s")
    assert ticket is not None
    sink = ticket.sink()
    assert sink is not None
    with pytest.raises(BadRequest):  # b's bytes under a's name: refused after its data went to the sink
        read_xorb(io.BytesIO(b.body), hash_from_hex(a.hash), sink)
    ticket.failed()
    taken = live.take(1, 2, "s")
    assert taken is not None and taken.complete([a.term]) is None
