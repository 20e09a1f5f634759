"""Content-addressed blob storage: every blob is named by the sha256 of its bytes."""

from releasehub.storage.base import BlobStore, BlobWriter, is_sha256
from releasehub.storage.local import LocalBlobStore
from releasehub.storage.memory import MemoryBlobStore

__all__ = ["BlobStore", "BlobWriter", "LocalBlobStore", "MemoryBlobStore", "is_sha256"]
