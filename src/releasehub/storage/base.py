"""The `BlobStore` interface.

A blob store holds immutable blobs named by their sha256. Writers hash while the bytes stream
in and only publish a blob under its name once the hash is known and, when the caller declared
one, matches it: a reader can never see a partial or corrupted blob under a valid name.
"""

from __future__ import annotations

import abc
import re
from pathlib import Path
from typing import BinaryIO

from releasehub.errors import ChecksumMismatch, PayloadTooLarge

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_sha256(value: str) -> bool:
    return bool(_SHA256.match(value))


class BlobWriter(abc.ABC):
    """Receives the bytes of one blob. Use as a context manager: left open, it is aborted."""

    def __init__(self, max_bytes: int | None = None, expected_size: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.expected_size = expected_size
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise PayloadTooLarge(f"Blob exceeds the limit of {self.max_bytes} bytes.")
        if self.expected_size is not None and self.size > self.expected_size:
            raise ChecksumMismatch(
                f"Received more than the declared {self.expected_size} bytes; the upload was discarded."
            )
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
    def _write(self, chunk: bytes) -> None: ...

    @abc.abstractmethod
    def commit(self, expected_sha256: str | None = None) -> str:
        """Publish the blob and return its sha256. Raises ChecksumMismatch and publishes
        nothing when the bytes do not hash to `expected_sha256`."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard whatever was written. Safe to call more than once."""

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.abort()


class BlobStore(abc.ABC):
    @abc.abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abc.abstractmethod
    def open(self, sha256: str) -> BinaryIO: ...

    @abc.abstractmethod
    def writer(self, max_bytes: int | None = None, expected_size: int | None = None) -> BlobWriter: ...

    def local_path(self, sha256: str) -> Path | None:
        """A filesystem path to serve the blob from with sendfile, when the store has one."""
        return None

    def put_bytes(self, data: bytes, expected_sha256: str | None = None) -> str:
        with self.writer() as writer:
            writer.write(data)
            return writer.commit(expected_sha256)

    def read_bytes(self, sha256: str) -> bytes:
        with self.open(sha256) as handle:
            return handle.read()
