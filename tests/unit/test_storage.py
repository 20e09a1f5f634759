"""The storage suite: every store (local files, memory, S3 on a real SeaweedFS) passes the same tests."""

from __future__ import annotations

import hashlib
import io
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from releasehub.errors import BadRequest, ChecksumMismatch, NotFound, PayloadTooLarge
from releasehub.settings import Settings
from releasehub.storage import BlobStore, LocalBlobStore, MemoryBlobStore, open_store
from releasehub.storage.s3 import S3BlobStore, StorageUnavailable


@pytest.fixture(params=["local", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs", tmp_path / "tmp", tmp_path / "objects")
    if request.param == "memory":
        return MemoryBlobStore()
    server = request.getfixturevalue("object_store")
    env = server.env(server.new_bucket(), f"deploy/{uuid.uuid4().hex[:8]}")
    settings = Settings.from_env({**env, "RELEASEHUB_DATA_DIR": str(tmp_path)})
    import os

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        os.environ[name] = env[name]
    s3 = open_store(settings)
    assert isinstance(s3, S3BlobStore) and s3.prefix.startswith("deploy/") and s3.prefix.endswith("/")
    return s3


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def test_large_writes_in_pieces_hash_every_byte_in_order(store: BlobStore) -> None:
    """Pieces large enough for the hashing thread, mixed with small ones and with a memoryview of a
    buffer the caller reuses at once: the digest is that of the bytes in the order written."""
    pieces = [bytes([n]) * (1536 * 1024 + n) for n in range(6)]
    reused = bytearray(b"r" * (2 * 1024 * 1024))
    expected = hashlib.sha256()
    with store.writer(expected_size=sum(map(len, pieces)) + 2 * len(reused) + 3) as writer:
        writer.write(b"abc")
        expected.update(b"abc")
        writer.write_many(pieces[:3])
        writer.write(memoryview(reused))
        expected.update(b"".join(pieces[:3]) + bytes(reused))
        reused[:] = b"s" * len(reused)  # the writer must not see this change in what it hashed before
        writer.write_many([*pieces[3:], memoryview(reused)])
        expected.update(b"".join(pieces[3:]) + bytes(reused))
        digest = writer.commit()
    assert digest == expected.hexdigest()
    assert hashlib.sha256(store.read_bytes(digest)).hexdigest() == digest


def test_large_mismatch_and_abort_publish_nothing(store: BlobStore) -> None:
    data = [b"x" * (4 * 1024 * 1024)] * 3
    with store.writer() as writer:
        writer.write_many(data)
        with pytest.raises(ChecksumMismatch):
            writer.commit("0" * 64)
    assert not store.exists(_sha(b"".join(data)))
    writer = store.writer()
    writer.write_many(data)
    writer.abort()  # with the hashing thread still holding pieces
    writer.abort()
    assert not store.exists(_sha(b"".join(data)))


def test_threaded_hash_keeps_what_a_reused_buffer_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hashing thread runs behind the writer: a piece in a buffer that the caller refills once
    `update` returns is hashed as it was then (held back here until the refill is done)."""
    import threading

    from releasehub.storage import base

    gate = threading.Event()
    real = hashlib.sha256

    class Gated:
        def __init__(self) -> None:
            self.inner = real()

        def update(self, data: bytes) -> None:
            gate.wait(30)
            self.inner.update(data)

        def hexdigest(self) -> str:
            return self.inner.hexdigest()

    monkeypatch.setattr(base.hashlib, "sha256", Gated)
    hasher = base.ThreadedSha256()
    buffer = bytearray(b"a" * (2 * 1024 * 1024))
    hasher.update([memoryview(buffer)])
    buffer[:] = b"b" * len(buffer)
    gate.set()
    assert hasher.hexdigest() == real(b"a" * len(buffer)).hexdigest()


def test_rewind_to_a_checkpoint_forgets_what_came_after(store: BlobStore) -> None:
    """A writer rewound to a checkpoint holds, and hashes, the bytes before it and what follows."""
    first, wrong, rest = b"a" * (3 * 1024 * 1024), b"b" * (2 * 1024 * 1024 + 7), b"c" * (1024 * 1024 + 3)
    with store.writer() as writer:
        writer.write(first)  # large: hashed in the writer's thread
        point = writer.checkpoint()
        writer.write(wrong)
        writer.write(b"small")
        writer.rewind(point)
        assert writer.size == len(first)
        writer.write(rest)
        second = writer.checkpoint()
        writer.rewind(second)  # rewinding to where it is changes nothing
        assert writer.commit(_sha(first + rest)) == _sha(first + rest)
    with store.open(_sha(first + rest)) as handle:
        assert handle.read() == first + rest
    with store.writer() as writer:  # a rewind to the start: nothing written at all
        start = writer.checkpoint()
        writer.write(wrong)
        writer.rewind(start)
        writer.write(b"x")
        assert writer.commit() == _sha(b"x")


def test_local_writes_survive_partial_writev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`writev` may write less than asked: the rest is written, in order, by the next calls."""
    import os

    from releasehub.storage import base

    real = os.writev

    def short(fd: int, buffers: list[memoryview]) -> int:
        return real(fd, [bytes(buffers[0])[: max(1, len(buffers[0]) // 3)]])

    monkeypatch.setattr(base.os, "writev", short)
    store = LocalBlobStore(tmp_path / "blobs", tmp_path / "tmp", tmp_path / "objects")
    pieces = [bytes([n]) * 70_001 for n in range(5)]
    with store.writer() as writer:
        writer.write_many(pieces)
        digest = writer.commit()
    assert store.read_bytes(digest) == b"".join(pieces)


def test_local_sweep_removes_leftovers(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", tmp_path / "tmp")
    (tmp_path / "tmp" / "upload-crashed").write_bytes(b"x")
    assert store.sweep_temporary() == 1


def test_local_blob_is_read_only(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    sha = store.put_bytes(b"data")
    path = store.local_path(sha)
    assert path is not None and path.stat().st_mode & 0o222 == 0


def test_finish_then_publish(store: BlobStore) -> None:
    """Between finish() and publish() the blob has its name but no reader sees it."""
    data = b"two steps"
    with store.writer() as writer:
        writer.write(data)
        assert writer.finish(_sha(data)) == _sha(data)
        assert not store.exists(_sha(data))
        writer.publish()
    assert store.read_bytes(_sha(data)) == data


def test_aborted_after_finish_publishes_nothing(store: BlobStore) -> None:
    data = b"never published"
    with store.writer() as writer:
        writer.write(data)
        writer.finish()
    assert not store.exists(_sha(data))


def test_open_is_seekable(store: BlobStore) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    sha = store.put_bytes(data)
    with store.open(sha) as handle:
        handle.seek(1000)
        assert handle.read(10) == data[1000:1010]
        handle.seek(-5, io.SEEK_END)
        assert handle.read() == data[-5:]


def test_publish_file_checks_the_hash(store: BlobStore, tmp_path: Path) -> None:
    path = tmp_path / "assembled"
    path.write_bytes(b"assembled")
    with pytest.raises(ChecksumMismatch):
        store.publish_file(path, _sha(b"other"))
    assert not store.exists(_sha(b"assembled")) and not store.exists(_sha(b"other"))
    path.write_bytes(b"assembled")
    assert store.publish_file(path, _sha(b"assembled")) == _sha(b"assembled")
    assert store.read_bytes(_sha(b"assembled")) == b"assembled"


def test_delete_and_listing(store: BlobStore) -> None:
    kept, doomed = store.put_bytes(b"kept"), store.put_bytes(b"doomed")
    listed = {item.sha256: item for item in store.iter_blobs()}
    assert {kept, doomed} <= set(listed)
    assert listed[kept].size == 4
    assert abs(listed[kept].modified - datetime.now(timezone.utc)) < timedelta(minutes=5)
    store.delete(doomed)
    store.delete(doomed)  # twice: no error
    assert not store.exists(doomed) and store.exists(kept)
    assert doomed not in {item.sha256 for item in store.iter_blobs()}


def test_named_objects(store: BlobStore, tmp_path: Path) -> None:
    name = "ab" * 32
    path = tmp_path / "xorb"
    path.write_bytes(b"xorb bytes")
    assert store.object_size("xorbs", name) is None
    store.put_object("xorbs", name, path)
    assert store.object_size("xorbs", name) == 10
    with store.open_object("xorbs", name) as handle:
        handle.seek(5)
        assert handle.read() == b"bytes"
    with pytest.raises(NotFound):
        store.open_object("xorbs", "cd" * 32)
    with pytest.raises(ValueError):
        store.object_size("../blobs", name)
    assert not store.exists(name)  # objects are not blobs


def test_named_objects_listing_and_delete(store: BlobStore, tmp_path: Path) -> None:
    kept, doomed = "12" * 32, "34" * 32
    for name, data in ((kept, b"kept xorb"), (doomed, b"doomed")):
        path = tmp_path / name
        path.write_bytes(data)
        store.put_object("xorbs", name, path)
    blob = store.put_bytes(b"a blob, not an object")
    listed = {item.name: item for item in store.iter_objects("xorbs")}
    assert set(listed) == {kept, doomed}  # blobs are not objects
    assert listed[kept].size == 9
    assert abs(listed[kept].modified - datetime.now(timezone.utc)) < timedelta(minutes=5)
    store.delete_object("xorbs", doomed)
    store.delete_object("xorbs", doomed)  # twice: no error
    assert store.object_size("xorbs", doomed) is None and store.object_size("xorbs", kept) == 9
    with pytest.raises(NotFound):
        store.open_object("xorbs", doomed)
    assert {item.name for item in store.iter_objects("xorbs")} == {kept}
    assert store.exists(blob)
    with pytest.raises(ValueError):
        store.delete_object("xorbs", "../" + kept)
    with pytest.raises(ValueError):
        list(store.iter_objects("blobs"))


def _upload_parts(store: BlobStore, key: str, parts: list[bytes]) -> tuple[str, dict[int, str]]:
    """Send the parts as a client would: to the store's part URLs, or through write_part."""
    upload_id = store.start_multipart(key)
    target = store.multipart(key, upload_id)
    etags: dict[int, str] = {}
    offset = 0
    for number, data in enumerate(parts, start=1):
        url = target.part_url(number, 300)
        if url is not None:
            answer = httpx.put(url, content=data)
            assert answer.status_code == 200, answer.text
            etags[number] = answer.headers["etag"]
        else:
            target.write_part(number, offset, data)
            etag = f'"{hashlib.md5(data).hexdigest()}"'
            target.record_part(number, etag)
            etags[number] = etag
        offset += len(data)
    return upload_id, etags


def test_multipart_upload(store: BlobStore) -> None:
    parts = [b"a" * (5 * 1024 * 1024), b"b" * 1000]  # S3 parts but the last are at least 5 MiB
    content = b"".join(parts)
    upload_id, etags = _upload_parts(store, "upload-1", parts)
    target = store.multipart("upload-1", upload_id)
    target.verify(etags, len(content), _sha(content))
    assert not store.exists(_sha(content))  # verified, not yet published
    target.publish()
    target.abort()
    assert store.read_bytes(_sha(content)) == content


def test_multipart_wrong_hash_publishes_nothing(store: BlobStore) -> None:
    parts = [b"c" * (5 * 1024 * 1024), b"d" * 10]
    content = b"".join(parts)
    upload_id, etags = _upload_parts(store, "upload-2", parts)
    target = store.multipart("upload-2", upload_id)
    with pytest.raises(ChecksumMismatch):
        target.verify(etags, len(content), _sha(b"something else"))
    target.abort()
    assert not store.exists(_sha(content)) and not store.exists(_sha(b"something else"))


def test_multipart_wrong_etag_is_refused(store: BlobStore) -> None:
    parts = [b"e" * (5 * 1024 * 1024), b"f" * 10]
    content = b"".join(parts)
    upload_id, etags = _upload_parts(store, "upload-3", parts)
    target = store.multipart("upload-3", upload_id)
    with pytest.raises(BadRequest):
        target.verify({1: etags[1], 2: '"' + "0" * 32 + '"'}, len(content), _sha(content))
    target.abort()
    assert not store.exists(_sha(content))


def test_sweep_removes_old_leftovers_only(store: BlobStore) -> None:
    upload_id, _ = _upload_parts(store, "upload-4", [b"g" * 100])
    assert store.sweep_temporary(older_than_seconds=3600) == 0  # young: kept
    removed = store.sweep_temporary(older_than_seconds=0)
    if not isinstance(store, MemoryBlobStore):
        assert removed >= 1


def test_s3_download_url_is_presigned(object_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = object_store.env()
    store = S3BlobStore(env["RELEASEHUB_STORAGE_URL"], tmp_path, endpoint_url=env["RELEASEHUB_S3_ENDPOINT_URL"])
    data = b"presigned bytes"
    sha = store.put_bytes(data)
    url = store.download_url(sha, 60, "weights file.bin", "application/octet-stream")
    assert url is not None and "X-Amz-Signature=" in url
    answer = httpx.get(url, headers={"Range": "bytes=0-9"})
    assert answer.status_code == 206 and answer.content == data[:10]
    assert "weights%20file.bin" in answer.headers["content-disposition"]
    tampered = url.replace(sha, _sha(b"other"))
    assert httpx.get(tampered).status_code == 403  # the signature covers the key


def test_s3_missing_bucket_says_what_to_do(object_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = S3BlobStore("s3://no-such-bucket-here", tmp_path, endpoint_url=object_store.endpoint)
    with pytest.raises(StorageUnavailable, match="Create the bucket"):
        store.check()


def test_storage_url_setting(tmp_path: Path) -> None:
    default = open_store(Settings(data_dir=tmp_path))
    assert isinstance(default, LocalBlobStore) and default.root == tmp_path / "blobs"
    chosen = open_store(Settings(data_dir=tmp_path, storage_url=f"file://{tmp_path / 'elsewhere'}"))
    assert isinstance(chosen, LocalBlobStore) and chosen.root == tmp_path / "elsewhere" / "blobs"
    with pytest.raises(ValueError, match="absolute"):
        open_store(Settings(data_dir=tmp_path, storage_url="file://relative"))
    with pytest.raises(ValueError, match="s3://"):
        open_store(Settings(data_dir=tmp_path, storage_url="ftp://x"))
    with pytest.raises(ValueError, match="at least 5242880 bytes"):
        open_store(Settings(data_dir=tmp_path, storage_url="s3://bucket", multipart_chunk_bytes=1024 * 1024))
