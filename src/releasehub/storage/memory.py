"""An in-memory blob store, for unit tests."""

from __future__ import annotations

import hashlib
import io
from typing import BinaryIO

from releasehub.errors import NotFound
from releasehub.storage.base import BlobStore, BlobWriter


class MemoryBlobWriter(BlobWriter):
    def __init__(self, store: "MemoryBlobStore", max_bytes: int | None, expected_size: int | None) -> None:
        super().__init__(max_bytes, expected_size)
        self._store = store
        self._buffer: io.BytesIO | None = io.BytesIO()

    def _write(self, chunk: bytes) -> None:
        assert self._buffer is not None
        self._buffer.write(chunk)

    def commit(self, expected_sha256: str | None = None) -> str:
        assert self._buffer is not None
        data = self._buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        self._check(digest, expected_sha256)
        self._store.blobs[digest] = data
        self._buffer = None
        return digest

    def abort(self) -> None:
        self._buffer = None


class MemoryBlobStore(BlobStore):
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def exists(self, sha256: str) -> bool:
        return sha256 in self.blobs

    def open(self, sha256: str) -> BinaryIO:
        try:
            return io.BytesIO(self.blobs[sha256])
        except KeyError:
            raise NotFound(f"Blob {sha256} is not in the store.") from None

    def writer(self, max_bytes: int | None = None, expected_size: int | None = None) -> MemoryBlobWriter:
        return MemoryBlobWriter(self, max_bytes, expected_size)
