"""Blobs in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, Ceph RGW, R2), through boto3.

Layout under `s3://BUCKET/PREFIX/`: `blobs/ab/cd/<sha256>`, `objects/<namespace>/ab/<name>` (Xet
xorbs) and `uploads/<key>` (multipart uploads being assembled). An upload is hashed on the
server's local disk (or, for multipart uploads the client sent straight to the store, read back
and hashed) before it is written under its content address, and an S3 PUT or copy makes the
whole object visible at once: no reader ever sees part of a blob under a sha256.

Downloads are presigned GETs of the object (`download_url`), computed locally (no request to
the store), so that the server decides and the store sends the bytes.
"""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, Iterator
from urllib.parse import quote

from releasehub.errors import BadRequest, ChecksumMismatch, NotFound, ReleasehubError
from releasehub.storage.base import (
    HASH_BATCH,
    BlobStore,
    Multipart,
    SpooledWriter,
    StoredBlob,
    StoredObject,
    check_object_name,
    is_sha256,
    sweep_folder,
)

_KEY = re.compile(r"^[A-Za-z0-9-]{1,200}$")
READ_BUFFER = 8 * 1024 * 1024
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest part (all but the last)


class StorageUnavailable(ReleasehubError):
    status_code = 503
    error_code = "StorageUnavailable"


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix/` → ('bucket', 'prefix/') (the prefix empty or ending in '/')."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"RELEASEHUB_STORAGE_URL {url!r} names no bucket; use s3://BUCKET[/PREFIX].")
    prefix = prefix.strip("/")
    return bucket, (prefix + "/" if prefix else "")


def _client_error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3Reader(io.RawIOBase):
    """A seekable reader of one object: each read is a ranged GET (buffered by the caller)."""

    def __init__(self, client: Any, bucket: str, key: str, size: int) -> None:
        self._client, self._bucket, self._key, self._size = client, bucket, key, size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size or len(buffer) == 0:
            return 0
        last = min(self._size, self._pos + len(buffer)) - 1
        body = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._pos}-{last}")["Body"]
        view = memoryview(buffer)
        filled = 0
        try:
            while filled < last - self._pos + 1:
                piece = body.read(last - self._pos + 1 - filled)
                if not piece:
                    break
                view[filled:filled + len(piece)] = piece
                filled += len(piece)
        finally:
            body.close()
        self._pos += filled
        return filled


class S3Multipart(Multipart):
    """An S3 multipart upload: the client PUTs parts to presigned URLs; the server completes it,
    reads it back to hash it, and copies it to its content address."""

    def __init__(self, store: "S3BlobStore", key: str, upload_id: str) -> None:
        if not _KEY.match(key):
            raise ValueError(f"not a multipart key: {key!r}")
        if not upload_id:
            raise BadRequest("This upload link carries no upload id; ask the LFS batch API for new links.")
        self._store = store
        self.key = store.prefix + "uploads/" + key
        self.upload_id = upload_id
        self._sha256: str | None = None

    def part_url(self, number: int, ttl_seconds: int) -> str | None:
        return str(self._store.presigner.generate_presigned_url(
            "upload_part", ExpiresIn=ttl_seconds,
            Params={"Bucket": self._store.bucket, "Key": self.key, "UploadId": self.upload_id, "PartNumber": number}))

    def write_part(self, number: int, offset: int, data: bytes) -> None:
        raise BadRequest("Parts of this upload go straight to the object store; use the part links of the batch answer.")

    def record_part(self, number: int, etag: str) -> None:
        raise BadRequest("Parts of this upload go straight to the object store; use the part links of the batch answer.")

    def verify(self, etags: dict[int, str], size: int, expected_sha256: str) -> None:
        import hashlib

        client, bucket = self._store.client, self._store.bucket
        parts = [{"PartNumber": number, "ETag": etag if etag.startswith('"') else f'"{etag}"'}
                 for number, etag in sorted(etags.items())]
        try:
            client.complete_multipart_upload(Bucket=bucket, Key=self.key, UploadId=self.upload_id,
                                             MultipartUpload={"Parts": parts})
        except Exception as exc:  # botocore.exceptions.ClientError
            code = _client_error_code(exc)
            if code in ("NoSuchUpload", "NoSuchKey"):
                raise NotFound("This multipart upload is unknown or was already completed; "
                               "ask the LFS batch API for new links and upload again.") from None
            if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                raise BadRequest(f"The object store refused the parts ({code}): a part is missing, "
                                 "or its ETag does not match what was uploaded. Upload the parts again.") from None
            raise
        head = client.head_object(Bucket=bucket, Key=self.key)
        if int(head["ContentLength"]) != size:
            raise ChecksumMismatch("Assembled upload has the wrong size; upload the parts again.")
        digest = hashlib.sha256()
        body = client.get_object(Bucket=bucket, Key=self.key)["Body"]
        try:
            while piece := body.read(HASH_BATCH):
                digest.update(piece)
        finally:
            body.close()
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise ChecksumMismatch(
                f"Assembled upload hashes to sha256 {actual} but {expected_sha256} was declared; "
                "the upload was discarded. Upload the file again.")
        self._sha256 = actual

    def publish(self) -> None:
        assert self._sha256 is not None, "publish before verify"
        target = self._store.blob_key(self._sha256)
        if not self._store._has(target):
            self._store.client.copy({"Bucket": self._store.bucket, "Key": self.key}, self._store.bucket, target,
                                    Config=self._store.transfer)
        self._store.client.delete_object(Bucket=self._store.bucket, Key=self.key)

    def abort(self) -> None:
        client, bucket = self._store.client, self._store.bucket
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=self.key, UploadId=self.upload_id)
        except Exception:  # already completed or aborted
            pass
        client.delete_object(Bucket=bucket, Key=self.key)


class S3BlobStore(BlobStore):
    def __init__(self, url: str, tmp: Path, *, endpoint_url: str | None = None,
                 public_endpoint_url: str | None = None, region: str | None = None) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket, self.prefix = parse_s3_url(url)
        self.url = url
        self.endpoint_url = endpoint_url or None
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        style = "path" if endpoint_url else "auto"
        config = Config(signature_version="s3v4", s3={"addressing_style": style},
                        retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=50,
                        connect_timeout=10, read_timeout=120)
        session = boto3.session.Session(region_name=region or None)
        self.client = session.client("s3", endpoint_url=self.endpoint_url, config=config)
        # Presigned URLs name the endpoint clients reach, which may differ from the server's own.
        self.presigner = (session.client("s3", endpoint_url=public_endpoint_url, config=config)
                          if public_endpoint_url else self.client)
        self.transfer = TransferConfig(multipart_threshold=64 * 1024 * 1024, multipart_chunksize=64 * 1024 * 1024,
                                       max_concurrency=4)

    def check(self) -> None:
        """Fail at start-up, with what to do, when the bucket cannot be reached."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            code = _client_error_code(exc) or type(exc).__name__
            raise StorageUnavailable(
                f"The object store at {self.endpoint_url or 'AWS S3'} does not serve bucket {self.bucket!r} ({code}). "
                "Create the bucket, or check RELEASEHUB_STORAGE_URL, RELEASEHUB_S3_ENDPOINT_URL and the "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables.") from None

    # ---------------------------------------------------------------- keys

    def blob_key(self, sha256: str) -> str:
        if not is_sha256(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return f"{self.prefix}blobs/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def _object_key(self, namespace: str, name: str) -> str:
        check_object_name(namespace, name)
        return f"{self.prefix}objects/{namespace}/{name[:2]}/{name}"

    def _size(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except Exception as exc:
            if _client_error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _has(self, key: str) -> bool:
        return self._size(key) is not None

    def _reader(self, key: str, what: str) -> BinaryIO:
        size = self._size(key)
        if size is None:
            raise NotFound(f"{what} is not in the store.")
        return io.BufferedReader(S3Reader(self.client, self.bucket, key, size), buffer_size=READ_BUFFER)  # type: ignore[return-value]

    def _upload(self, path: Path, key: str) -> None:
        try:
            if not self._has(key):
                self.client.upload_file(str(path), self.bucket, key, Config=self.transfer)
        finally:
            path.unlink(missing_ok=True)

    # ---------------------------------------------------------------- blobs

    def exists(self, sha256: str) -> bool:
        return self._has(self.blob_key(sha256))

    def open(self, sha256: str) -> BinaryIO:
        return self._reader(self.blob_key(sha256), f"Blob {sha256}")

    def writer(self, max_bytes: int | None = None, expected_size: int | None = None) -> SpooledWriter:
        return SpooledWriter(self, self.tmp, max_bytes, expected_size)

    def publish_local(self, path: Path, sha256: str) -> None:
        self._upload(path, self.blob_key(sha256))

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.blob_key(sha256))

    def iter_blobs(self) -> Iterator[StoredBlob]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + "blobs/")
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if is_sha256(name):
                    yield StoredBlob(name, int(item["Size"]), item["LastModified"].astimezone(timezone.utc))

    def download_url(self, sha256: str, ttl_seconds: int, filename: str, content_type: str) -> str | None:
        return str(self.presigner.generate_presigned_url("get_object", ExpiresIn=ttl_seconds, Params={
            "Bucket": self.bucket, "Key": self.blob_key(sha256),
            "ResponseContentDisposition": f"inline; filename*=UTF-8''{quote(filename)}",
            "ResponseContentType": content_type,
        }))

    # ---------------------------------------------------------------- multipart

    def start_multipart(self, key: str) -> str:
        if not _KEY.match(key):
            raise ValueError(f"not a multipart key: {key!r}")
        answer = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.prefix + "uploads/" + key)
        return str(answer["UploadId"])

    def multipart(self, key: str, upload_id: str) -> S3Multipart:
        return S3Multipart(self, key, upload_id)

    # ---------------------------------------------------------------- named objects

    def put_object(self, namespace: str, name: str, path: Path) -> None:
        self._upload(path, self._object_key(namespace, name))

    def open_object(self, namespace: str, name: str) -> BinaryIO:
        return self._reader(self._object_key(namespace, name), f"Object {namespace}/{name}")

    def object_size(self, namespace: str, name: str) -> int | None:
        return self._size(self._object_key(namespace, name))

    def delete_object(self, namespace: str, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._object_key(namespace, name))

    def iter_objects(self, namespace: str) -> Iterator[StoredObject]:
        check_object_name(namespace, "0" * 64)
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}objects/{namespace}/")
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if is_sha256(name):
                    yield StoredObject(name, int(item["Size"]), item["LastModified"].astimezone(timezone.utc))

    # ---------------------------------------------------------------- housekeeping

    def sweep_temporary(self, older_than_seconds: float = 0) -> int:
        """Local spool files, and multipart uploads (with what they assembled) older than the age."""
        removed = sweep_folder(self.tmp, older_than_seconds)
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than_seconds)
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix + "uploads/")
        for page in pages:
            for upload in page.get("Uploads", []) or []:
                if upload["Initiated"].astimezone(timezone.utc) <= cutoff:
                    try:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                           UploadId=upload["UploadId"])
                        removed += 1
                    except Exception as exc:
                        if _client_error_code(exc) not in ("NoSuchUpload", "404"):
                            raise
        listing = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                        Prefix=self.prefix + "uploads/")
        for page in listing:
            for item in page.get("Contents", []):
                if item["LastModified"].astimezone(timezone.utc) <= cutoff:
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        return removed
