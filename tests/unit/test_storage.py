from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from releasehub.errors import ChecksumMismatch, NotFound, PayloadTooLarge
from releasehub.storage import BlobStore, LocalBlobStore, MemoryBlobStore


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return LocalBlobStore(tmp_path / "blobs") if request.param == "local" else MemoryBlobStore()


def test_put_and_read(store: BlobStore) -> None:
    sha = store.put_bytes(b"hello")
    assert sha == hashlib.sha256(b"hello").hexdigest()
    assert store.exists(sha) and store.read_bytes(sha) == b"hello"


def test_mismatch_publishes_nothing(store: BlobStore) -> None:
    wrong = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(ChecksumMismatch):
        store.put_bytes(b"hello", expected_sha256=wrong)
    assert not store.exists(wrong)
    assert not store.exists(hashlib.sha256(b"hello").hexdigest())


def test_size_limits(store: BlobStore) -> None:
    with store.writer(max_bytes=3) as writer, pytest.raises(PayloadTooLarge):
        writer.write(b"1234")
    with store.writer(expected_size=2) as writer:
        writer.write(b"1")
        with pytest.raises(ChecksumMismatch):
            writer.commit()


def test_missing_blob(store: BlobStore) -> None:
    with pytest.raises(NotFound):
        store.open("0" * 64)


def test_local_aborted_writer_leaves_no_temporary(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", tmp_path / "tmp")
    with store.writer() as writer:
        writer.write(b"partial")
    assert list((tmp_path / "tmp").iterdir()) == []


def test_local_sweep_removes_leftovers(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", tmp_path / "tmp")
    (tmp_path / "tmp" / "upload-crashed").write_bytes(b"x")
    assert store.sweep_temporary() == 1


def test_local_blob_is_read_only(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    sha = store.put_bytes(b"data")
    path = store.local_path(sha)
    assert path is not None and path.stat().st_mode & 0o222 == 0
