"""An in-memory blob store, for unit tests."""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterator

from releasehub.errors import BadRequest, ChecksumMismatch, NotFound
from releasehub.storage.base import (
    BlobStore,
    Checkpoint,
    BlobWriter,
    Chunk,
    Multipart,
    StoredBlob,
    StoredObject,
    check_object_name,
)


class MemoryBlobWriter(BlobWriter):
    def __init__(self, store: "MemoryBlobStore", max_bytes: int | None, expected_size: int | None) -> None:
        super().__init__(max_bytes, expected_size)
        self._store = store
        self._buffer: io.BytesIO | None = io.BytesIO()
        self._data: bytes | None = None

    def _write(self, chunk: Chunk) -> None:
        assert self._buffer is not None
        self._buffer.write(chunk)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.size)

    def rewind(self, point: Checkpoint) -> None:
        assert self._buffer is not None, "rewind after finish or abort"
        self._buffer.truncate(point.size)
        self._buffer.seek(point.size)
        self.size = point.size

    def _digest(self) -> str:
        assert self._buffer is not None
        self._data = self._buffer.getvalue()
        self._buffer = None
        return hashlib.sha256(self._data).hexdigest()

    def publish(self) -> None:
        assert self.sha256 is not None and self._data is not None, "publish before finish"
        self._store._put(self.sha256, self._data)
        self._data = None

    def abort(self) -> None:
        self._buffer = None
        self._data = None


class MemoryMultipart(Multipart):
    def __init__(self, store: "MemoryBlobStore", key: str) -> None:
        self._store = store
        self._key = key
        self._sha256: str | None = None

    @property
    def _state(self) -> tuple[bytearray, dict[int, str]]:
        return self._store.uploads.setdefault(self._key, (bytearray(), {}))

    def part_url(self, number: int, ttl_seconds: int) -> str | None:
        return None

    def write_part(self, number: int, offset: int, data: bytes) -> None:
        buffer, _ = self._state
        if len(buffer) < offset + len(data):
            buffer.extend(b"\0" * (offset + len(data) - len(buffer)))
        buffer[offset:offset + len(data)] = data

    def record_part(self, number: int, etag: str) -> None:
        self._state[1][number] = etag

    def verify(self, etags: dict[int, str], size: int, expected_sha256: str) -> None:
        buffer, recorded = self._state
        for number, etag in sorted(etags.items()):
            if number not in recorded:
                raise NotFound(f"Part {number} was never uploaded; upload it, then complete again.")
            if recorded[number].strip('"') != etag.strip('"'):
                raise BadRequest(f"ETag of part {number} does not match the uploaded part.")
        if len(buffer) != size:
            raise ChecksumMismatch("Assembled upload has the wrong size; upload the parts again.")
        digest = hashlib.sha256(buffer).hexdigest()
        if digest != expected_sha256:
            raise ChecksumMismatch(f"Assembled upload hashes to sha256 {digest} but {expected_sha256} was declared; "
                                   "the upload was discarded. Upload the file again.")
        self._sha256 = digest

    def publish(self) -> None:
        assert self._sha256 is not None, "publish before verify"
        self._store._put(self._sha256, bytes(self._state[0]))

    def abort(self) -> None:
        self._store.uploads.pop(self._key, None)


class MemoryBlobStore(BlobStore):
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.modified: dict[str, datetime] = {}
        self.objects: dict[tuple[str, str], bytes] = {}
        self.object_modified: dict[tuple[str, str], datetime] = {}
        self.uploads: dict[str, tuple[bytearray, dict[int, str]]] = {}

    def _put(self, sha256: str, data: bytes) -> None:
        if sha256 not in self.blobs:
            self.blobs[sha256] = data
            self.modified[sha256] = datetime.now(timezone.utc)

    def exists(self, sha256: str) -> bool:
        return sha256 in self.blobs

    def open(self, sha256: str) -> BinaryIO:
        try:
            return io.BytesIO(self.blobs[sha256])
        except KeyError:
            raise NotFound(f"Blob {sha256} is not in the store.") from None

    def writer(self, max_bytes: int | None = None, expected_size: int | None = None) -> MemoryBlobWriter:
        return MemoryBlobWriter(self, max_bytes, expected_size)

    def publish_local(self, path: Path, sha256: str) -> None:
        self._put(sha256, path.read_bytes())
        path.unlink(missing_ok=True)

    def delete(self, sha256: str) -> None:
        self.blobs.pop(sha256, None)
        self.modified.pop(sha256, None)

    def iter_blobs(self) -> Iterator[StoredBlob]:
        for sha, data in list(self.blobs.items()):
            yield StoredBlob(sha, len(data), self.modified[sha])

    def start_multipart(self, key: str) -> str:
        return ""

    def multipart(self, key: str, upload_id: str) -> MemoryMultipart:
        return MemoryMultipart(self, key)

    def put_object(self, namespace: str, name: str, path: Path) -> None:
        check_object_name(namespace, name)
        if (namespace, name) not in self.objects:
            self.objects[(namespace, name)] = path.read_bytes()
            self.object_modified[(namespace, name)] = datetime.now(timezone.utc)
        path.unlink(missing_ok=True)

    def open_object(self, namespace: str, name: str) -> BinaryIO:
        check_object_name(namespace, name)
        try:
            return io.BytesIO(self.objects[(namespace, name)])
        except KeyError:
            raise NotFound(f"Object {namespace}/{name} is not in the store.") from None

    def object_size(self, namespace: str, name: str) -> int | None:
        check_object_name(namespace, name)
        data = self.objects.get((namespace, name))
        return None if data is None else len(data)

    def delete_object(self, namespace: str, name: str) -> None:
        check_object_name(namespace, name)
        self.objects.pop((namespace, name), None)
        self.object_modified.pop((namespace, name), None)

    def iter_objects(self, namespace: str) -> Iterator[StoredObject]:
        check_object_name(namespace, "0" * 64)
        for (space, name), data in list(self.objects.items()):
            if space == namespace:
                yield StoredObject(name, len(data), self.object_modified[(space, name)])
