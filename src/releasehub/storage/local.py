"""Blobs as files under `root/ab/cd/<sha256>`, written through a temporary file and renamed.

The rename is atomic on POSIX filesystems, so a blob path either does not exist or holds the
complete, verified content. Temporary files of uploads interrupted by a crash stay in `tmp/`
and are removed by `sweep_temporary()` at start-up.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from releasehub.errors import NotFound
from releasehub.storage.base import BlobStore, BlobWriter, is_sha256


class LocalBlobWriter(BlobWriter):
    def __init__(self, store: "LocalBlobStore", max_bytes: int | None, expected_size: int | None) -> None:
        super().__init__(max_bytes, expected_size)
        self._store = store
        fd, name = tempfile.mkstemp(prefix="upload-", dir=store.tmp)
        self._path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=0)
        self._hash = hashlib.sha256()

    def _write(self, chunk: bytes) -> None:
        assert self._file is not None, "write after commit or abort"
        self._hash.update(chunk)
        self._file.write(chunk)

    def commit(self, expected_sha256: str | None = None) -> str:
        assert self._file is not None, "commit after commit or abort"
        digest = self._hash.hexdigest()
        self._check(digest, expected_sha256)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        self._store._publish(self._path, digest)
        return digest

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._path.unlink(missing_ok=True)


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path, tmp: Path | None = None) -> None:
        self.root = Path(root)
        self.tmp = Path(tmp) if tmp is not None else self.root / ".tmp"
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        try:
            return open(self.path_for(sha256), "rb")
        except FileNotFoundError:
            raise NotFound(f"Blob {sha256} is not in the store.") from None

    def local_path(self, sha256: str) -> Path | None:
        return self.path_for(sha256)

    def writer(self, max_bytes: int | None = None, expected_size: int | None = None) -> LocalBlobWriter:
        return LocalBlobWriter(self, max_bytes, expected_size)

    def publish_file(self, path: Path, expected_sha256: str | None = None) -> str:
        """Hash a file already in `tmp/` (an assembled multipart upload) and publish it."""
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(8 * 1024 * 1024):
                digest.update(chunk)
        sha = digest.hexdigest()
        if expected_sha256 is not None and sha != expected_sha256:
            path.unlink(missing_ok=True)
            from releasehub.errors import ChecksumMismatch

            raise ChecksumMismatch(
                f"Assembled upload hashes to sha256 {sha} but {expected_sha256} was declared; "
                "the upload was discarded. Upload the file again."
            )
        self._publish(path, sha)
        return sha

    def _publish(self, tmp_path: Path, sha256: str) -> None:
        target = self.path_for(sha256)
        if target.exists():
            # Same name, same bytes: the blob is already there.
            tmp_path.unlink(missing_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp_path, 0o444)
        os.replace(tmp_path, target)

    def sweep_temporary(self, older_than_seconds: float = 0) -> int:
        """Remove temporary files left by interrupted uploads; returns how many."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in self.tmp.iterdir():
            if entry.is_file() and entry.stat().st_mtime <= cutoff:
                entry.unlink(missing_ok=True)
                removed += 1
        return removed
