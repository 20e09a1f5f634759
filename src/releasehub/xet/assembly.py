"""Xet uploads assembled while their xorbs arrive.

The client sends a file's xorbs first and its shard last, and only the shard says which chunks
make the file; so `service.register_shard` reads them back out of the xorbs, writes the blob and
hashes it after the upload's last byte has arrived, while the client waits. For the commonest
upload, one large file, the xorbs arrive in the file's order and the file is all of them, whole.
So each upload session (the client's `X-Xet-Session-Id`, within the repo and user of its CAS
token) gets an `Assembly`: a blob writer to which a thread of its own appends every verified xorb
of the session, in the order their requests began, while the next ones arrive, with a checkpoint
of the writer (size, hash state) after each. When the shard comes, the longest run of the file's
first terms that are the first assembled xorbs, whole and in that order, is already written: the
writer is rewound to the end of that run (xorbs the client sent at the same time can arrive in
either order, so the last ones may be out of place), the rest of the file is written from its
xorbs, and the blob is finished (hashed and checked against the shard's sha256, fsynced) and
published. A file whose first term is not the first assembled xorb is reconstructed from its
xorbs, and the assembly dropped.

The xorb next in line is appended by its own request while it verifies the xorb (`begin_direct`,
through `read_xorb`'s sink), so that a xorb sent in order is read once; a xorb verified out of
turn is appended by the thread, read back from the store. Only xorbs the server verified and
stored count: one refused after its data went in breaks the assembly. The shard is verified and
the blob's sha256 checked exactly as for a reconstruction: an assembly changes when the work is
done, never what is accepted.

Bounds: at most `xet_assembly_sessions` live assemblies per process (0: none). One is dropped
after a xorb of its session failed, when it grows past the largest file, once a shard took it, or
after IDLE_SECONDS with no xorb in flight. A session whose xorbs reach several processes (workers,
replicas) has no assembly that matches, and its files are reconstructed.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable

from releasehub.xet.xorb import XorbIndex, iter_unpacked

from releasehub.storage.base import Checkpoint

if TYPE_CHECKING:
    from releasehub.storage import BlobStore
    from releasehub.storage.base import BlobWriter

log = logging.getLogger("releasehub.xet")

IDLE_SECONDS = 120.0
SESSION_ID_MAX = 128
# How long a shard waits for xorbs of its session still being received or appended.
SETTLE_SECONDS = 600.0
XORBS = "xorbs"  # the blob store's namespace for verified xorbs (as in service.XORBS)

Key = tuple[int, int, str]
Term = tuple[str, int, int]


class Assembly:
    """One session's xorbs, appended in ticket order to one blob writer by a thread of its own."""

    def __init__(self, store: "BlobStore", max_bytes: int) -> None:
        self._store = store
        self._writer: BlobWriter | None = store.writer(max_bytes=max_bytes)
        self._cond = threading.Condition()
        self._tickets = 0  # tickets handed out
        self._appended = 0  # tickets whose xorb is appended (tickets are appended in order)
        self._ready: dict[int, tuple[str, XorbIndex]] = {}
        self._broken = False
        self._closed = False  # a shard took it: no more tickets
        self._appending = False  # the thread or a verifying request (`begin_direct`) holds the writer
        self._direct_failed = False  # the writer refused a direct piece (the assembly grew too large)
        self.xorbs: list[Term] = []
        self._marks: list[Checkpoint] = []  # the writer after each of `xorbs`
        self.touched = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="xet-assembly", daemon=True)
        self._thread.start()

    # -- the xorb route's side

    def ticket(self) -> int | None:
        with self._cond:
            if self._broken or self._closed:
                return None
            number = self._tickets
            self._tickets += 1
            self.touched = time.monotonic()
            return number

    def ready(self, number: int, hex_hash: str, index: XorbIndex, direct: bool = False) -> None:
        """The xorb of ticket `number` is stored: the thread appends it in its turn; with `direct`,
        it was appended while being verified (`begin_direct`) and is now recorded."""
        mark = self._writer.checkpoint() if direct and self._writer is not None else None
        with self._cond:
            if direct:
                self._appending = False
                if self._direct_failed or mark is None:
                    self._broken = True
                else:
                    self._marks.append(mark)
                    self.xorbs.append((hex_hash, 0, len(index.sizes)))
                    self._appended += 1
            else:
                self._ready[number] = (hex_hash, index)
            self.touched = time.monotonic()
            self._cond.notify_all()

    def failed(self, direct: bool = False) -> None:
        """A xorb of the session was refused or its request broke off: its place stays empty."""
        with self._cond:
            self._broken = True
            if direct:
                self._appending = False
            self._cond.notify_all()

    def begin_direct(self, number: int) -> bool:
        """Whether the xorb of ticket `number` is the next to append and nothing is appending:
        then its request writes the xorb's data itself while verifying it (`write`), sparing the
        thread a second reading of it, and ends with `ready(..., direct=True)` or `failed(True)`."""
        with self._cond:
            if self._broken or self._appending or self._appended != number or self._writer is None:
                return False
            self._appending = True
            return True

    def write(self, pieces: list[bytes]) -> None:
        """Unpacked data of the xorb being appended directly, in order. A piece the writer refuses
        (past the largest file) drops the assembly, never the xorb's upload."""
        if self._direct_failed or self._writer is None:
            return
        try:
            self._writer.write_many(pieces)
        except Exception as exc:
            log.info("xet assembly dropped: %s", exc)
            self._direct_failed = True

    def idle(self, now: float) -> bool:
        with self._cond:
            settled = self._appended == self._tickets and not self._ready
            return settled and now - self.touched > IDLE_SECONDS

    # -- the appending thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._broken or (not self._appending and self._appended in self._ready)
                           or (self._closed and not self._appending and self._appended == self._tickets)):
                    self._cond.wait()
                if self._broken or self._appended not in self._ready:  # broken, or taken and done
                    self._cond.notify_all()
                    return
                hex_hash, index = self._ready.pop(self._appended)
                self._appending = True
            try:
                self._append(hex_hash, index)
            except Exception as exc:  # a missing, damaged or oversize xorb: this session is reconstructed
                log.info("xet assembly dropped: xorb %s could not be appended (%s)", hex_hash, exc)
                self.failed(direct=True)
                return
            mark = self._writer.checkpoint() if self._writer is not None else None
            with self._cond:
                self._appending = False
                if mark is not None:
                    self._marks.append(mark)
                self.xorbs.append((hex_hash, 0, len(index.sizes)))
                self._appended += 1
                self._cond.notify_all()

    def _append(self, hex_hash: str, index: XorbIndex) -> None:
        assert self._writer is not None
        with self._store.open_object(XORBS, hex_hash) as handle:
            for data in iter_unpacked(handle, index, 0, len(index.sizes)):
                self._writer.write(data)

    # -- the shard's side

    def complete(self, terms: list[Term], timeout: float = SETTLE_SECONDS) -> "tuple[BlobWriter, int] | None":
        """Once every xorb of the session is appended: the writer holding the file of these terms
        up to term N, and N (at least 1); None (and the assembly dropped) when its first term is
        not the first xorb assembled."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            deadline = time.monotonic() + timeout
            while not self._broken and self._appended < self._tickets:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._broken = True
                    self._cond.notify_all()
                    break
                self._cond.wait(left)
            done = 0
            if not self._broken:
                while done < min(len(terms), len(self.xorbs)) and terms[done] == self.xorbs[done]:
                    done += 1
        self._thread.join()
        if done == 0 or self._writer is None:
            self.abort()
            return None
        writer, self._writer = self._writer, None
        if done < len(self.xorbs):
            writer.rewind(self._marks[done - 1])
        return writer, done

    def abort(self) -> None:
        self.failed()
        self._thread.join()
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


class Ticket:
    """One xorb request's place in its session's assembly; `ready` or `failed` exactly once."""

    def __init__(self, assembly: Assembly, number: int) -> None:
        self.assembly = assembly
        self.number = number
        self.done = False
        self.direct = False

    def sink(self) -> Callable[[list[bytes]], None] | None:
        """Where to write the xorb's unpacked data while verifying it, when the assembly is at
        this xorb now (see `Assembly.begin_direct`); else None, and the thread reads it later."""
        if not self.done and not self.direct and self.assembly.begin_direct(self.number):
            self.direct = True
            return self.assembly.write
        return None

    def ready(self, hex_hash: str, index: XorbIndex) -> None:
        if not self.done:
            self.done = True
            self.assembly.ready(self.number, hex_hash, index, self.direct)

    def failed(self) -> None:
        if not self.done:
            self.done = True
            self.assembly.failed(self.direct)


class Assemblies:
    """The live assemblies of one server process, by (repo, user, session)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._live: dict[Key, Assembly] = {}
        self._lock = threading.Lock()

    def ticket(self, store: "BlobStore", max_bytes: int, repo_id: int, user_id: int,
               session: str | None) -> Ticket | None:
        """A place for the xorb a request is about to send, or None (no session, no room)."""
        if self.limit <= 0 or not session or len(session) > SESSION_ID_MAX:
            return None
        key = (repo_id, user_id, session)
        dropped: list[Assembly] = []
        with self._lock:
            now = time.monotonic()
            for other, live in list(self._live.items()):
                if live.idle(now):
                    dropped.append(self._live.pop(other))
            assembly = self._live.get(key)
            if assembly is None and len(self._live) < self.limit:
                assembly = self._live[key] = Assembly(store, max_bytes)
        for old in dropped:
            old.abort()
        if assembly is None:
            return None
        number = assembly.ticket()
        return None if number is None else Ticket(assembly, number)

    def take(self, repo_id: int, user_id: int, session: str | None) -> Assembly | None:
        """The session's assembly, for its shard; later xorbs of the session get no ticket in it."""
        if not session:
            return None
        with self._lock:
            return self._live.pop((repo_id, user_id, session), None)

    def __len__(self) -> int:
        return len(self._live)

    def close(self) -> None:
        with self._lock:
            live, self._live = list(self._live.values()), {}
        for assembly in live:
            assembly.abort()
