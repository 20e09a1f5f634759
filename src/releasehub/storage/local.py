"""Blobs as files under `root/ab/cd/<sha256>`, written through a temporary file and renamed.

The rename is atomic on POSIX filesystems, so a blob path either does not exist or holds the
complete, verified content. Temporary files of uploads interrupted by a crash stay in `tmp/`
and are removed by `sweep_temporary()` at start-up and by the collector. Named objects (Xet
xorbs) live beside the blobs, under `objects/<namespace>/ab/<name>`.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterator

from releasehub.errors import BadRequest, ChecksumMismatch, NotFound
from releasehub.storage.base import (
    BlobStore,
    Multipart,
    SpooledWriter,
    StoredBlob,
    StoredObject,
    check_object_name,
    hash_file,
    is_sha256,
    sweep_folder,
)

_KEY = re.compile(r"^[A-Za-z0-9-]{1,200}$")
_OBJECT = re.compile(r"^[0-9a-f]{64}$")


def _place(source: Path, target: Path) -> None:
    """Rename a complete local file into its content address (read-only), unless one is there."""
    if target.exists():
        # Same name, same bytes: it is already there.
        source.unlink(missing_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(source, 0o444)
    os.replace(source, target)


class LocalMultipart(Multipart):
    """Parts written at their offsets into one sparse file in `tmp/`, with one ETag marker each."""

    def __init__(self, store: "LocalBlobStore", key: str) -> None:
        if not _KEY.match(key):
            raise ValueError(f"not a multipart key: {key!r}")
        self._store = store
        self.data = store.tmp / f"multipart-{key}"
        self.parts = store.tmp / f"multipart-{key}.parts"
        self._sha256: str | None = None

    def part_url(self, number: int, ttl_seconds: int) -> str | None:
        return None

    def write_part(self, number: int, offset: int, data: bytes) -> None:
        self.parts.mkdir(exist_ok=True)
        fd = os.open(self.data, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def record_part(self, number: int, etag: str) -> None:
        self.parts.mkdir(exist_ok=True)
        (self.parts / str(number)).write_text(etag)

    def verify(self, etags: dict[int, str], size: int, expected_sha256: str) -> None:
        for number, etag in sorted(etags.items()):
            marker = self.parts / str(number)
            if not marker.exists():
                raise NotFound(f"Part {number} was never uploaded; upload it, then complete again.")
            if marker.read_text().strip('"') != etag.strip('"'):
                raise BadRequest(f"ETag of part {number} does not match the uploaded part.")
        try:
            actual = self.data.stat().st_size
        except FileNotFoundError:
            raise NotFound("No part of this upload was received; upload the parts again.") from None
        if actual != size:
            raise ChecksumMismatch("Assembled upload has the wrong size; upload the parts again.")
        digest = hash_file(self.data)
        if digest != expected_sha256:
            raise ChecksumMismatch(
                f"Assembled upload hashes to sha256 {digest} but {expected_sha256} was declared; "
                "the upload was discarded. Upload the file again."
            )
        self._sha256 = digest

    def publish(self) -> None:
        assert self._sha256 is not None, "publish before verify"
        _place(self.data, self._store.path_for(self._sha256))

    def abort(self) -> None:
        self.data.unlink(missing_ok=True)
        if self.parts.is_dir():
            for marker in self.parts.glob("*"):
                marker.unlink(missing_ok=True)
            self.parts.rmdir()


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path, tmp: Path | None = None, objects: Path | None = None) -> None:
        self.root = Path(root)
        self.tmp = Path(tmp) if tmp is not None else self.root / ".tmp"
        self.objects = Path(objects) if objects is not None else self.root.parent / "objects"
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

    def writer(self, max_bytes: int | None = None, expected_size: int | None = None) -> SpooledWriter:
        return SpooledWriter(self, self.tmp, max_bytes, expected_size)

    def publish_local(self, path: Path, sha256: str) -> None:
        _place(path, self.path_for(sha256))

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def iter_blobs(self) -> Iterator[StoredBlob]:
        for first in sorted(self.root.iterdir()):
            if not first.is_dir() or first == self.tmp or len(first.name) != 2:
                continue
            for path in first.glob("*/*"):
                if not is_sha256(path.name):
                    continue
                try:
                    info = path.stat()
                except FileNotFoundError:
                    continue
                yield StoredBlob(path.name, info.st_size, datetime.fromtimestamp(info.st_mtime, timezone.utc))

    def start_multipart(self, key: str) -> str:
        return ""

    def multipart(self, key: str, upload_id: str) -> LocalMultipart:
        return LocalMultipart(self, key)

    def _object_path(self, namespace: str, name: str) -> Path:
        check_object_name(namespace, name)
        return self.objects / namespace / name[:2] / name

    def put_object(self, namespace: str, name: str, path: Path) -> None:
        _place(path, self._object_path(namespace, name))

    def open_object(self, namespace: str, name: str) -> BinaryIO:
        try:
            return open(self._object_path(namespace, name), "rb")
        except FileNotFoundError:
            raise NotFound(f"Object {namespace}/{name} is not in the store.") from None

    def object_size(self, namespace: str, name: str) -> int | None:
        try:
            return self._object_path(namespace, name).stat().st_size
        except FileNotFoundError:
            return None

    def delete_object(self, namespace: str, name: str) -> None:
        self._object_path(namespace, name).unlink(missing_ok=True)

    def iter_objects(self, namespace: str) -> Iterator[StoredObject]:
        check_object_name(namespace, "0" * 64)
        folder = self.objects / namespace
        if not folder.is_dir():
            return
        for first in sorted(folder.iterdir()):
            if not first.is_dir() or len(first.name) != 2:
                continue
            for path in first.iterdir():
                if not _OBJECT.match(path.name):
                    continue
                try:
                    info = path.stat()
                except FileNotFoundError:
                    continue
                yield StoredObject(path.name, info.st_size, datetime.fromtimestamp(info.st_mtime, timezone.utc))

    def sweep_temporary(self, older_than_seconds: float = 0) -> int:
        return sweep_folder(self.tmp, older_than_seconds)
