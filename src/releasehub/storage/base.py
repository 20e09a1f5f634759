"""The `BlobStore` interface.

A blob store holds immutable blobs named by their sha256, and a few other immutable objects
named by the caller after it verified them (Xet xorbs, in the namespace `xorbs`). Writers hash
while the bytes stream in and only publish a blob under its name once the hash is known and,
when the caller declared one, matches it: a reader can never see a partial or corrupted blob
under a valid name. Routes talk to this interface only; which store is behind it (local files,
an S3-compatible object store, memory) is the settings' business (`storage.open_store`).

The local writer (`SpooledWriter`) is built for one large upload at disk speed: the sha256 is
computed in a thread of its own (hashlib releases the GIL on large buffers) while the same bytes
are written with `os.writev` on a raw descriptor, and the kernel is asked to start writing the
file to disk every few MiB (`sync_file_range`), so that the fsync before publishing waits for the
last pieces only. Hashing is the one serial step an upload cannot avoid; the rest runs beside it.

Publishing is in two steps, `finish()` (hash and check) and `publish()`, so that the caller can
record the blob in the database between them: `releasehub gc` deletes an object only while it
holds the blob's row and sees it old and unreferenced, and a writer that recorded the row first
never has its object deleted under it (see `releasehub.storage.gc`).
"""

from __future__ import annotations

import abc
import ctypes
import hashlib
import os
import queue
import re
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence

from releasehub.errors import ChecksumMismatch, PayloadTooLarge

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_OBJECT_NAME = re.compile(r"^[0-9a-f]{64}$")
NAMESPACES = ("xorbs",)
HASH_BATCH = 8 * 1024 * 1024
# Writes of at least this many bytes at once are hashed in the writer's hashing thread; smaller
# ones (inline files, Xet chunks) are hashed where they are written, as starting a thread costs more.
THREADED_HASH_FROM = 1024 * 1024
# Batches the hashing thread may hold before a write waits for it (a bound on memory: the sender
# is slowed down by TCP instead of the body piling up in the server).
HASH_QUEUE_DEPTH = 2
# Every this many bytes written, the kernel is asked to start writing them to disk.
WRITEBACK_STEP = 32 * 1024 * 1024
_IOV_MAX = 512

# What a writer takes: any bytes-like piece (a reader's memoryview too; see ThreadedSha256).
Chunk = bytes | bytearray | memoryview


def is_sha256(value: str) -> bool:
    return bool(_SHA256.match(value))


def check_object_name(namespace: str, name: str) -> None:
    if namespace not in NAMESPACES or not _OBJECT_NAME.match(name):
        raise ValueError(f"not an object name: {namespace}/{name!r}")


@dataclass(frozen=True)
class StoredBlob:
    """One blob as the store lists it (for the collector)."""

    sha256: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class StoredObject:
    """One named object as the store lists it (for the collector)."""

    name: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class Checkpoint:
    """What a writer had received at one point: its size and its hash's state then."""

    size: int
    state: object = None


class BlobWriter(abc.ABC):
    """Receives the bytes of one blob. Use as a context manager: left open, it is aborted."""

    def __init__(self, max_bytes: int | None = None, expected_size: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.expected_size = expected_size
        self.size = 0
        self.sha256: str | None = None  # set by finish()

    def write(self, chunk: Chunk) -> None:
        self._count(len(chunk))
        self._write(chunk)

    def write_many(self, chunks: Sequence[Chunk]) -> None:
        """Several pieces at once, in order: one system call and no joined copy where the writer
        can (an upload route hands over the pieces of about 8 MiB of body as they arrived)."""
        self._count(sum(len(chunk) for chunk in chunks))
        self._write_many(chunks)

    def _count(self, length: int) -> None:
        self.size += length
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise PayloadTooLarge(f"Blob exceeds the limit of {self.max_bytes} bytes.")
        if self.expected_size is not None and self.size > self.expected_size:
            raise ChecksumMismatch(
                f"Received more than the declared {self.expected_size} bytes; the upload was discarded."
            )

    def _write_many(self, chunks: Sequence[Chunk]) -> None:
        for chunk in chunks:
            self._write(chunk)

    def _check(self, digest: str, expected_sha256: str | None) -> None:
        if self.expected_size is not None and self.size != self.expected_size:
            raise ChecksumMismatch(
                f"Received {self.size} bytes but {self.expected_size} were declared; "
                "the upload was discarded. Upload the file again."
            )
        if expected_sha256 is not None and digest != expected_sha256:
            raise ChecksumMismatch(
                f"Content hashes to sha256 {digest} but {expected_sha256} was declared; "
                "the upload was discarded. Upload the file again."
            )

    @abc.abstractmethod
    def _write(self, chunk: Chunk) -> None: ...

    def checkpoint(self) -> Checkpoint:
        """The point reached, for `rewind` (waits until everything written so far is hashed)."""
        raise NotImplementedError(f"{type(self).__name__} cannot rewind")

    def rewind(self, point: Checkpoint) -> None:
        """Forget every byte written after `point`, a checkpoint of this writer: later writes
        continue from there, and the hash is the one of the bytes before it."""
        raise NotImplementedError(f"{type(self).__name__} cannot rewind")

    def finish(self, expected_sha256: str | None = None) -> str:
        """The sha256 of what was written, checked against `expected_sha256` and the declared
        size. Raises ChecksumMismatch (and publishes nothing, ever) when they differ."""
        digest = self._digest()
        self._check(digest, expected_sha256)
        self.sha256 = digest
        return digest

    @abc.abstractmethod
    def _digest(self) -> str: ...

    @abc.abstractmethod
    def publish(self) -> None:
        """Make the finished blob readable under its sha256 (a no-op when it already is)."""

    def commit(self, expected_sha256: str | None = None) -> str:
        """finish() and publish() at once, for callers that keep no database row of the blob."""
        digest = self.finish(expected_sha256)
        self.publish()
        return digest

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard whatever was written and not published. Safe to call more than once."""

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.abort()


class ThreadedSha256:
    """The sha256 of a stream of pieces, computed in a thread of its own once a large piece comes.

    `update` hands the pieces to the thread and returns: the caller writes the same bytes to disk
    meanwhile. At most HASH_QUEUE_DEPTH batches wait; then `update` blocks until the thread
    catches up. Pieces the caller might reuse (anything but `bytes`) are copied first. Small
    updates before the first large one are hashed at once, in the caller's thread."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[Sequence[Chunk] | None] = queue.Queue(HASH_QUEUE_DEPTH)
        self._thread: threading.Thread | None = None
        self._cancelled = False

    def update(self, chunks: Sequence[Chunk]) -> None:
        if self._thread is None:
            if sum(len(chunk) for chunk in chunks) < THREADED_HASH_FROM:
                for chunk in chunks:
                    self._hash.update(chunk)
                return
            self._thread = threading.Thread(target=self._run, name="blob-sha256", daemon=True)
            self._thread.start()
        self._queue.put([chunk if type(chunk) is bytes else bytes(chunk) for chunk in chunks])

    def _run(self) -> None:
        while (chunks := self._queue.get()) is not None:
            if not self._cancelled:
                for chunk in chunks:
                    self._hash.update(chunk)

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def hexdigest(self) -> str:
        """The digest of everything updated so far (waits for the thread)."""
        self._stop()
        return self._hash.hexdigest()

    def snapshot(self) -> object:
        """The state after everything updated so far (waits for the thread; the next large
        update starts another)."""
        self._stop()
        return self._hash.copy()

    def restore(self, state: object) -> None:
        """Continue from a `snapshot`, as if nothing had been updated since."""
        self._stop()
        self._hash = state.copy()  # type: ignore[attr-defined]

    def cancel(self) -> None:
        """Stop the thread without hashing what it still holds; safe to call more than once."""
        self._cancelled = True
        self._stop()


def _write_fully(fd: int, chunks: Sequence[Chunk]) -> int:
    """Write every byte of `chunks` to `fd` with as few `writev` calls as the kernel allows."""
    written = 0
    pending = [memoryview(chunk) for chunk in chunks if len(chunk)]
    while pending:
        done = os.writev(fd, pending[:_IOV_MAX])
        written += done
        while pending and done >= len(pending[0]):
            done -= len(pending[0])
            pending.pop(0)
        if done:
            pending[0] = pending[0][done:]
    return written


@cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range(2) from the C library, or None elsewhere."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing these bytes of the file to disk now, without waiting for
    it. Only a hint, so that the fsync before publishing finds little left to write; durability
    still comes from that fsync alone, and a failure here is ignored."""
    function = _sync_file_range()
    if function is not None:
        function(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


class SpooledWriter(BlobWriter):
    """Writes into a temporary file on local disk while hashing; the store publishes the file.

    The file is fsynced before its hash is answered, so that a published blob is on disk; the
    hashing thread and the early writeback (see the module's docstring) only overlap the work."""

    def __init__(self, store: "BlobStore", tmp: Path, max_bytes: int | None, expected_size: int | None) -> None:
        super().__init__(max_bytes, expected_size)
        self._store = store
        fd, name = tempfile.mkstemp(prefix="upload-", dir=tmp)
        self.path = Path(name)
        self._fd: int | None = fd
        self._hash = ThreadedSha256()
        self._written = 0
        self._writeback_from = 0

    def _write(self, chunk: Chunk) -> None:
        self._write_many((chunk,))

    def _write_many(self, chunks: Sequence[Chunk]) -> None:
        assert self._fd is not None, "write after finish or abort"
        self._hash.update(chunks)  # first: the thread hashes while the bytes are written
        self._written += _write_fully(self._fd, chunks)
        if self._written - self._writeback_from >= WRITEBACK_STEP:
            start_writeback(self._fd, self._writeback_from, self._written - self._writeback_from)
            self._writeback_from = self._written

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.size, self._hash.snapshot())

    def rewind(self, point: Checkpoint) -> None:
        assert self._fd is not None, "rewind after finish or abort"
        self._hash.restore(point.state)
        os.ftruncate(self._fd, point.size)
        os.lseek(self._fd, point.size, os.SEEK_SET)
        self.size = self._written = point.size
        self._writeback_from = min(self._writeback_from, point.size)

    def _digest(self) -> str:
        assert self._fd is not None, "finish after finish or abort"
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return self._hash.hexdigest()

    def publish(self) -> None:
        assert self.sha256 is not None, "publish before finish"
        self._store.publish_local(self.path, self.sha256)

    def abort(self) -> None:
        self._hash.cancel()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.unlink(missing_ok=True)


class Multipart(abc.ABC):
    """One multipart upload of a large blob, under a key that names it on every replica.

    The client PUTs each part either straight to the store (`part_url`) or to the server's part
    route (`write_part`); completing it `verify()`s the whole (every part's ETag, the size, the
    sha256) before `publish()` makes it a blob. Nothing is readable under a content address
    before then."""

    @abc.abstractmethod
    def part_url(self, number: int, ttl_seconds: int) -> str | None:
        """Where the client PUTs part `number` straight to the store, or None when parts go
        through the server's own part route."""

    @abc.abstractmethod
    def write_part(self, number: int, offset: int, data: bytes) -> None:
        """Write bytes of part `number` at byte `offset` of the blob (the server's part route)."""

    @abc.abstractmethod
    def record_part(self, number: int, etag: str) -> None:
        """Remember the ETag the server answered for a part it received whole."""

    @abc.abstractmethod
    def verify(self, etags: dict[int, str], size: int, expected_sha256: str) -> None:
        """Join the parts, checking each part's ETag, the size and the sha256; raises BadRequest,
        NotFound or ChecksumMismatch and publishes nothing when any is wrong."""

    @abc.abstractmethod
    def publish(self) -> None:
        """Make the verified upload the blob named by its sha256."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Remove the parts and whatever was assembled; safe to call more than once."""


class BlobStore(abc.ABC):
    # ---------------------------------------------------------------- blobs by sha256

    @abc.abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abc.abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """A seekable reader of the blob; NotFound when it is not stored."""

    @abc.abstractmethod
    def writer(self, max_bytes: int | None = None, expected_size: int | None = None) -> BlobWriter: ...

    @abc.abstractmethod
    def publish_local(self, path: Path, sha256: str) -> None:
        """Move a verified local file (hashing to `sha256`) into the store under its name."""

    @abc.abstractmethod
    def delete(self, sha256: str) -> None:
        """Remove a blob (the collector's, under the blob row's lock); a missing blob is no error."""

    @abc.abstractmethod
    def iter_blobs(self) -> Iterator[StoredBlob]: ...

    def local_path(self, sha256: str) -> Path | None:
        """A filesystem path to serve the blob from with sendfile, when the store has one."""
        return None

    def download_url(self, sha256: str, ttl_seconds: int, filename: str, content_type: str) -> str | None:
        """A short-lived URL at which a client fetches the blob from the store itself (a presigned
        GET), or None when the server must send the bytes. Computing it never calls the store."""
        return None

    def publish_file(self, path: Path, expected_sha256: str | None = None) -> str:
        """Hash a local file (an assembled upload), check it and publish it; returns its sha256."""
        digest = hash_file(path)
        if expected_sha256 is not None and digest != expected_sha256:
            path.unlink(missing_ok=True)
            raise ChecksumMismatch(
                f"Assembled upload hashes to sha256 {digest} but {expected_sha256} was declared; "
                "the upload was discarded. Upload the file again."
            )
        self.publish_local(path, digest)
        return digest

    def put_bytes(self, data: bytes, expected_sha256: str | None = None) -> str:
        with self.writer() as writer:
            writer.write(data)
            return writer.commit(expected_sha256)

    def read_bytes(self, sha256: str) -> bytes:
        with self.open(sha256) as handle:
            return handle.read()

    # ---------------------------------------------------------------- multipart uploads

    @abc.abstractmethod
    def start_multipart(self, key: str) -> str:
        """Begin a multipart upload named `key` (letters, digits, '-'); returns the id that the
        client's links carry back ('' when the store needs none)."""

    @abc.abstractmethod
    def multipart(self, key: str, upload_id: str) -> Multipart:
        """The multipart upload `start_multipart(key)` began."""

    # ---------------------------------------------------------------- named objects (xorbs)

    @abc.abstractmethod
    def put_object(self, namespace: str, name: str, path: Path) -> None:
        """Move a verified local file into the store as `namespace/name` (no-op when present)."""

    @abc.abstractmethod
    def open_object(self, namespace: str, name: str) -> BinaryIO:
        """A seekable reader of the object; NotFound when absent."""

    @abc.abstractmethod
    def object_size(self, namespace: str, name: str) -> int | None: ...

    @abc.abstractmethod
    def delete_object(self, namespace: str, name: str) -> None:
        """Remove an object (the collector's, under its row's lock); a missing object is no error."""

    @abc.abstractmethod
    def iter_objects(self, namespace: str) -> Iterator[StoredObject]:
        """Every object stored in the namespace, in no particular order."""

    # ---------------------------------------------------------------- housekeeping

    def sweep_temporary(self, older_than_seconds: float = 0) -> int:
        """Remove leftovers of interrupted uploads older than the given age; returns how many."""
        return 0


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_BATCH):
            digest.update(chunk)
    return digest.hexdigest()


def sweep_folder(folder: Path, older_than_seconds: float) -> int:
    """Remove the files (and emptied folders) under `folder` older than the given age."""
    import time

    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than_seconds
    removed = 0
    for entry in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        try:
            if entry.is_file() and entry.stat().st_mtime <= cutoff:
                entry.unlink(missing_ok=True)
                removed += 1
            elif entry.is_dir() and not any(entry.iterdir()) and entry.stat().st_mtime <= cutoff:
                entry.rmdir()
        except FileNotFoundError:
            continue
    return removed
