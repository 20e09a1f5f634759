"""Content-addressed blob storage: every blob is named by the sha256 of its bytes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from releasehub.storage.base import BlobStore, BlobWriter, Multipart, StoredBlob, is_sha256
from releasehub.storage.local import LocalBlobStore
from releasehub.storage.memory import MemoryBlobStore

if TYPE_CHECKING:
    from releasehub.settings import Settings

__all__ = ["BlobStore", "BlobWriter", "LocalBlobStore", "MemoryBlobStore", "Multipart", "StoredBlob", "is_sha256",
           "open_store"]


def open_store(settings: "Settings") -> BlobStore:
    """The store `storage_url` names: `file://DIR` (default: the data dir's `blobs/`) or
    `s3://BUCKET[/PREFIX]` (with `s3_endpoint_url` for S3-compatible servers)."""
    url = settings.storage_url
    if not url:
        return LocalBlobStore(settings.blob_dir, settings.tmp_dir, settings.xet_dir)
    if url.startswith("file://"):
        root = Path(url.removeprefix("file://"))
        if not root.is_absolute():
            raise ValueError(f"RELEASEHUB_STORAGE_URL {url!r} must name an absolute path (file:///srv/blobs).")
        return LocalBlobStore(root / "blobs", root / "tmp", root / "objects")
    if url.startswith("s3://"):
        from releasehub.storage.s3 import MIN_PART_BYTES, S3BlobStore

        if settings.multipart_chunk_bytes < MIN_PART_BYTES:
            raise ValueError(f"RELEASEHUB_MULTIPART_CHUNK_BYTES is {settings.multipart_chunk_bytes}; an S3 store takes "
                             f"parts of at least {MIN_PART_BYTES} bytes (5 MiB): raise it.")
        store = S3BlobStore(url, settings.tmp_dir, endpoint_url=settings.s3_endpoint_url,
                            public_endpoint_url=settings.s3_public_endpoint_url)
        store.check()
        return store
    raise ValueError(f"RELEASEHUB_STORAGE_URL {url!r} is neither file://DIR nor s3://BUCKET[/PREFIX].")
