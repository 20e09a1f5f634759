"""Validation of file paths inside a repository, and git object ids."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from releasehub.errors import InvalidPath
from releasehub.text import require_text

MAX_PATH_BYTES = 1000
MAX_SEGMENT_BYTES = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
# Bidirectional controls reorder how text is shown ("Trojan Source"): 'evil\u202etxt.exe'.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Unicode categories refused beyond ASCII: C1 controls (Cc), format characters (Cf: zero-width
# space and joiners, word joiner, soft hyphen, BOM, tag characters...), line and paragraph separators.
_INVISIBLE_CATEGORIES = frozenset(("Cc", "Cf", "Zl", "Zp"))
# What a checkout on Windows or macOS may turn into '.git' itself.
_GIT_DIR_ALIASES = frozenset((".git", "git~1"))


def _refuse_invisible(path: str) -> None:
    for char in path:
        category = unicodedata.category(char)
        if category not in _INVISIBLE_CATEGORIES:
            continue
        name = f"U+{ord(char):04X} ({unicodedata.name(char, 'unnamed')})"
        if char in _BIDI:
            why = "a bidirectional text control, which makes a name display in another order than it is stored"
        elif category == "Cc":
            why = "a control character"
        elif category in ("Zl", "Zp"):
            why = "a line or paragraph separator"
        else:
            why = "an invisible formatting character, which makes different names look the same"
        raise InvalidPath(f"File path {path!r} contains {name}, {why}; rename the file without it.")


def validate_path(path: str) -> str:
    """Return `path` if it is a safe relative path inside a repo, else raise InvalidPath."""
    hint = "Use a relative path with '/' separators, like 'weights/model.safetensors'."
    if not path:
        raise InvalidPath(f"Empty file path. {hint}")
    require_text(path, f"File path {path[:80]!r}", InvalidPath)
    if len(path.encode()) > MAX_PATH_BYTES:
        raise InvalidPath(f"File path is longer than {MAX_PATH_BYTES} bytes: {path[:80]!r}...")
    if _CONTROL.search(path):
        raise InvalidPath(f"File path {path!r} contains a control character or a backslash. {hint}")
    if path.startswith("/"):
        raise InvalidPath(f"File path {path!r} is absolute. {hint}")
    if not path.isascii():
        _refuse_invisible(path)
        if unicodedata.normalize("NFC", path) != path:
            raise InvalidPath(f"File path {path!r} is not in Unicode NFC form; normalise it before upload.")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidPath(f"File path {path!r} has an empty, '.' or '..' segment. {hint}")
        if segment.rstrip(". ").lower() in _GIT_DIR_ALIASES:
            raise InvalidPath(f"File path {path!r} is inside '.git/' (or a name that Windows or macOS take for "
                              "it: '.GIT', '.git.', 'git~1'), which a repo cannot hold; rename that folder.")
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
