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


# ------------------------------------------------------------------ '.git' in any case, invisible characters


@pytest.mark.parametrize("path", [".GIT/config", ".Git/x", "a/.gIt/hooks/pre-commit", ".git./config",
                                  ".git /x", "GIT~1/config", "a/.git"])
def test_git_folder_in_any_spelling_is_refused(path: str) -> None:
    with pytest.raises(InvalidPath, match=r"inside '\.git/'.*rename that folder"):
        validate_path(path)


@pytest.mark.parametrize("path", [".gitignore", ".gitattributes", ".github/workflows/ci.yml", "a/.git-x",
                                  "git/x", "a/b.git"])
def test_names_that_only_start_like_git_are_fine(path: str) -> None:
    assert validate_path(path) == path


@pytest.mark.parametrize("char", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067",
                                  "\u2068", "\u2069", "\u200e", "\u200f", "\u061c"])
def test_bidi_controls_are_refused(char: str) -> None:
    with pytest.raises(InvalidPath) as raised:
        validate_path(f"weights/model{char}txt.safetensors")
    message = raised.value.message
    assert f"U+{ord(char):04X}" in message and "bidirectional" in message and "rename the file" in message


@pytest.mark.parametrize("char", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\U000e0041",
                                  "\u2028", "\u2029", "\x85", "\x9b"])
def test_invisible_and_c1_control_characters_are_refused(char: str) -> None:
    with pytest.raises(InvalidPath) as raised:
        validate_path(f"a{char}b.bin")
    assert f"U+{ord(char):04X}" in raised.value.message and "rename the file without it" in raised.value.message


def test_a_zero_width_character_cannot_smuggle_a_git_folder() -> None:
    with pytest.raises(InvalidPath, match="U\\+200C"):
        validate_path(".g\u200cit/config")


@pytest.mark.parametrize("path", ["模型/权重.safetensors", "données/é.txt", "emoji-😀.md", "ελληνικά/α.bin"])
def test_visible_non_ascii_paths_are_fine(path: str) -> None:
    assert validate_path(path) == path
