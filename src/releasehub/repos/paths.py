"""Validation of file paths inside a repository, and git object ids."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from releasehub.errors import InvalidPath

MAX_PATH_BYTES = 1000
MAX_SEGMENT_BYTES = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


def validate_path(path: str) -> str:
    """Return `path` if it is a safe relative path inside a repo, else raise InvalidPath."""
    hint = "Use a relative path with '/' separators, like 'weights/model.safetensors'."
    if not path:
        raise InvalidPath(f"Empty file path. {hint}")
    if len(path.encode()) > MAX_PATH_BYTES:
        raise InvalidPath(f"File path is longer than {MAX_PATH_BYTES} bytes: {path[:80]!r}...")
    if _CONTROL.search(path):
        raise InvalidPath(f"File path {path!r} contains a control character or a backslash. {hint}")
    if path.startswith("/"):
        raise InvalidPath(f"File path {path!r} is absolute. {hint}")
    if unicodedata.normalize("NFC", path) != path:
        raise InvalidPath(f"File path {path!r} is not in Unicode NFC form; normalise it before upload.")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidPath(f"File path {path!r} has an empty, '.' or '..' segment. {hint}")
        if segment == ".git":
            raise InvalidPath(f"File path {path!r} is inside '.git/', which a repo cannot hold.")
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            raise InvalidPath(f"A segment of {path!r} is longer than {MAX_SEGMENT_BYTES} bytes.")
    return path


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob with this content (what the Hub calls `oid`/`blobId`)."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def lfs_git_oid(sha256: str, size: int) -> str:
    return git_blob_oid(lfs_pointer(sha256, size))
