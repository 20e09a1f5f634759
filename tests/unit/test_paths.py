from __future__ import annotations

import hashlib

import pytest

from releasehub.errors import InvalidPath
from releasehub.repos.paths import git_blob_oid, lfs_git_oid, lfs_pointer, validate_path


@pytest.mark.parametrize("path", ["README.md", "a/b/c.safetensors", "weights/model-00001-of-00002.bin", "é/ü.txt"])
def test_valid_paths(path: str) -> None:
    assert validate_path(path) == path


@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "../x", "a/../b", "a/./b", "a//b", ".git/config", "a/.git/x", "a\\b", "a\x00b",
     "a\nb", "x" * 1001, "a/" + "y" * 256, "e\u0301.txt"],
)
def test_invalid_paths(path: str) -> None:
    with pytest.raises(InvalidPath):
        validate_path(path)


def test_git_blob_oid_matches_git() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert git_blob_oid(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_lfs_pointer_oid() -> None:
    sha = hashlib.sha256(b"x").hexdigest()
    pointer = lfs_pointer(sha, 1)
    assert pointer.startswith(b"version https://git-lfs.github.com/spec/v1\noid sha256:")
    assert lfs_git_oid(sha, 1) == git_blob_oid(pointer)
