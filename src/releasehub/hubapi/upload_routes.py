"""Uploads, as `huggingface_hub` performs them: preupload, LFS batch, LFS PUT, NDJSON commit."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import tempfile
from dataclasses import dataclass
from typing import Any, AsyncIterator, BinaryIO, Callable, Iterable, Iterator
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from releasehub import publishing
from releasehub.access import Permission
from releasehub.errors import BadRequest, ChecksumMismatch, InvalidCommit, PayloadTooLarge
from releasehub.hubapi.deps import RepoContext, decode_segment, get_services, repo_access, wake_dispatcher
from releasehub.hubapi.signing import UploadGrant, new_grant, sign, verify
from releasehub.repos import gitfiles
from releasehub.repos import service as repos
from releasehub.repos.paths import validate_path
from releasehub.services import Services
from releasehub.storage import BlobWriter, Multipart, is_sha256

router = APIRouter(tags=["upload"])

LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"
WRITE_BATCH = 8 * 1024 * 1024


# ---------------------------------------------------------------- preupload


class PreuploadFile(BaseModel):
    path: str = Field(max_length=2000)
    sample: str = Field(default="", max_length=2000)
    size: int = Field(ge=0)


class PreuploadBody(BaseModel):
    files: list[PreuploadFile] = Field(max_length=1000)
    gitIgnore: str | None = Field(default=None, max_length=1024 * 1024)


@router.post("/api/models/{namespace}/{name}/preupload/{revision}")
def preupload(
    revision: str, body: PreuploadBody, create_pr: str | None = Query(None),
    ctx: RepoContext = Depends(repo_access(Permission.REPO_WRITE)),
) -> dict[str, Any]:
    if create_pr not in (None, "0", "false"):
        raise BadRequest("Pull requests are not supported; commit to a branch instead.")
    commit = repos.resolve_revision(ctx.session, ctx.repo, decode_segment(revision))
    files = repos.commit_files(ctx.session, commit)
    # The repo's own rules, as on the Hub: its .gitattributes LFS patterns, and the .gitignore sent
    # with the request (the one in the commit being prepared) or else the repo's.
    lfs_rules = gitfiles.lfs_spec(_repo_text(ctx, files, ".gitattributes"))
    ignore_text = body.gitIgnore if body.gitIgnore is not None else _repo_text(ctx, files, ".gitignore")
    ignore_rules = gitfiles.ignore_spec(ignore_text)
    out = []
    for item in body.files:
        path = validate_path(item.path)
        try:
            sample = base64.b64decode(item.sample, validate=True)
        except ValueError:  # binascii.Error, or a non-ASCII str
            raise BadRequest(f"sample of {path} is not valid base64.") from None
        lfs = item.size > 0 and (repos.is_lfs_path(path, item.size, sample) or gitfiles.matches(lfs_rules, path))
        existing = files.get(path)
        out.append({
            "path": path,
            "uploadMode": "lfs" if lfs else "regular",
            "shouldIgnore": path != ".gitignore" and gitfiles.matches(ignore_rules, path),
            "oid": _remote_oid(existing, lfs),
        })
    return {"files": out, "commitOid": commit.oid}


def _repo_text(ctx: RepoContext, files: dict[str, repos.FileState], path: str) -> str:
    """A small text file of the revision ('' when absent, large or not UTF-8)."""
    state = files.get(path)
    if state is None or state.size > gitfiles.MAX_BYTES:
        return ""
    try:
        return ctx.services.store.read_bytes(state.sha256).decode("utf-8")
    except (UnicodeDecodeError, FileNotFoundError):
        return ""


def _remote_oid(existing: repos.FileState | None, lfs: bool) -> str | None:
    """What the client compares with its own oid to skip unchanged files: the sha256 of an LFS
    file, the git blob sha1 of a regular one (None when the file is new or changes mode)."""
    if existing is None or existing.lfs != lfs:
        return None
    return existing.sha256 if lfs else existing.git_oid


# ---------------------------------------------------------------- LFS batch


class LfsObject(BaseModel):
    oid: str = Field(max_length=64)
    size: int = Field(ge=0)


class LfsBatchBody(BaseModel):
    operation: str
    transfers: list[str] = Field(default_factory=lambda: ["basic"], max_length=10)
    objects: list[LfsObject] = Field(max_length=1000)
    hash_algo: str = "sha256"


def _signed_url(base: str, path: str, grant: UploadGrant, key: bytes, extra: dict[str, str] | None = None) -> str:
    query = urlencode({"size": grant.size, "chunk": grant.chunk, "exp": grant.expires, "repo": grant.repo_id,
                       "user": grant.user_id, "sig": sign(key, grant), **(extra or {})})
    return f"{base}{path}?{query}"


@router.post("/{namespace}/{name}.git/info/lfs/objects/batch")
def lfs_batch(
    request: Request, body: LfsBatchBody, ctx: RepoContext = Depends(repo_access(Permission.REPO_WRITE))
) -> Response:
    if body.operation != "upload":
        raise BadRequest("Only the 'upload' operation is served here; download files through /resolve.")
    if body.hash_algo != "sha256":
        raise BadRequest(f"Unsupported hash algorithm {body.hash_algo!r}; use sha256.")
    settings = ctx.services.settings
    base = (settings.public_url or str(request.base_url)).rstrip("/")
    multipart = "multipart" in body.transfers
    may_name = publishing.oid_check_for(ctx.session, ctx.subject, ctx.repo)
    objects = []
    for obj in body.objects:
        if not is_sha256(obj.oid):
            objects.append({"oid": obj.oid, "size": obj.size,
                            "error": {"code": 422, "message": "oid must be 64 lowercase hex digits (sha256)"}})
            continue
        if obj.size > settings.max_file_bytes:
            objects.append({"oid": obj.oid, "size": obj.size,
                            "error": {"code": 413, "message": f"file exceeds {settings.max_file_bytes} bytes"}})
            continue
        # "Already stored" only for what the committer may name in this repo: whether a blob exists
        # elsewhere on the server is never told (the client sends the bytes, which are checked).
        if may_name(obj.oid):
            known = repos.blob_size(ctx.session, obj.oid)
            if known is not None and known == obj.size and ctx.services.store.exists(obj.oid):
                objects.append({"oid": obj.oid, "size": obj.size})
                continue
        use_parts = multipart and obj.size >= settings.multipart_threshold_bytes
        chunk = settings.multipart_chunk_bytes if use_parts else 0
        grant = new_grant(obj.oid, obj.size, chunk, settings.upload_url_ttl_seconds, ctx.repo.id,
                          ctx.subject.user_id or 0)
        key = ctx.services.signing_key
        if use_parts:
            # Parts go straight to the object store where it takes them (presigned part URLs), else
            # to the server's part route; either way the completion, on the server, verifies the sha256.
            sig = sign(key, grant)
            upload_key = f"{obj.oid}-{sig[:16]}"
            upload_id = ctx.services.store.start_multipart(upload_key)
            target = ctx.services.store.multipart(upload_key, upload_id)
            extra = {"upload": upload_id} if upload_id else {}
            header: dict[str, str] = {"chunk_size": str(chunk)}
            for number in range(1, math.ceil(obj.size / chunk) + 1):
                header[str(number)] = (target.part_url(number, settings.upload_url_ttl_seconds)
                                       or _signed_url(base, f"/api/lfs/objects/{obj.oid}/parts/{number}", grant, key,
                                                      extra))
            action = {"href": _signed_url(base, f"/api/lfs/objects/{obj.oid}/complete", grant, key, extra),
                      "header": header}
        else:
            action = {"href": _signed_url(base, f"/api/lfs/objects/{obj.oid}", grant, key)}
        objects.append({"oid": obj.oid, "size": obj.size, "authenticated": True, "actions": {"upload": action}})
    transfer = "multipart" if multipart else "basic"
    return JSONResponse({"transfer": transfer, "objects": objects, "hash_algo": "sha256"},
                        media_type=LFS_MEDIA_TYPE)


# ---------------------------------------------------------------- LFS transfers


async def _pieces(request: Request) -> AsyncIterator[list[bytes]]:
    """The request body as lists of the pieces the server received, about WRITE_BATCH bytes a
    list, so that the work on them runs off the event loop in few, large calls (and the pieces
    are never copied into one buffer)."""
    pieces: list[bytes] = []
    held = 0
    async for chunk in request.stream():
        if not chunk:
            continue
        pieces.append(chunk)
        held += len(chunk)
        if held >= WRITE_BATCH:
            yield pieces
            pieces = []
            held = 0
    if pieces:
        yield pieces


async def _batched(request: Request) -> AsyncIterator[bytes]:
    """The request body in pieces of about WRITE_BATCH bytes (for callers that want one buffer)."""
    async for pieces in _pieces(request):
        yield pieces[0] if len(pieces) == 1 else b"".join(pieces)


async def stream_into(request: Request, writer: BlobWriter) -> None:
    """Feed the body to `writer`: each batch is written in a worker thread while the next one is
    being received (and the writer hashes in a thread of its own), so that receiving, hashing and
    writing overlap."""
    pending: asyncio.Future[None] | None = None
    try:
        async for pieces in _pieces(request):
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(run_in_threadpool(writer.write_many, pieces))
        if pending is not None:
            await pending
            pending = None
    finally:
        if pending is not None and not pending.done():
            # Never abort the writer under a write still running in its thread.
            await asyncio.wait([pending])


@dataclass(frozen=True)
class SignedLink:
    grant: UploadGrant
    signature: str


def upload_link(
    oid: str, size: int = Query(ge=0), chunk: int = Query(ge=0), exp: int = Query(), repo: int = Query(),
    user: int = Query(), sig: str = Query(max_length=64), services: Services = Depends(get_services),
) -> SignedLink:
    """UPLOAD_LINK, enforced: the link's HMAC (over oid, size, chunking, expiry, repo and user) is
    the credential, as the LFS client sends no token with the bytes."""
    if not is_sha256(oid):
        raise BadRequest("oid must be 64 lowercase hex digits.")
    grant = UploadGrant(oid, size, chunk, exp, repo, user)
    verify(services.signing_key, grant, sig)
    return SignedLink(grant, sig)


upload_link.permission = Permission.UPLOAD_LINK  # type: ignore[attr-defined]


def _multipart_grant(link: SignedLink) -> UploadGrant:
    if link.grant.chunk < 1:
        raise BadRequest("This link is for a single-part upload; PUT the whole file to it.")
    return link.grant


def _finish_upload(services: Services, writer: BlobWriter, expected_sha256: str | None, repo_pk: int,
                   user_pk: int) -> str:
    """Hash and check what the writer received, record it, then publish it (in a worker thread)."""
    oid = writer.finish(expected_sha256)
    publishing.publish_upload(services.db, oid, writer.size, repo_pk, user_pk, writer.publish)
    return oid


@router.put("/api/lfs/objects/{oid}")
async def lfs_upload(
    request: Request, link: SignedLink = Depends(upload_link), services: Services = Depends(get_services),
) -> Response:
    grant = link.grant
    writer = services.store.writer(max_bytes=services.settings.max_file_bytes, expected_size=grant.size)
    try:
        await stream_into(request, writer)
        await run_in_threadpool(_finish_upload, services, writer, grant.oid, grant.repo_id, grant.user_id)
    finally:
        writer.abort()
    return Response(status_code=200)


@router.post("/api/models/{namespace}/{name}/blobs")
async def upload_blob(
    request: Request, size: int = Query(ge=0), sha256: str | None = Query(None, max_length=64),
    ctx: RepoContext = Depends(repo_access(Permission.REPO_WRITE)),
) -> dict[str, Any]:
    """Store a file of a coming commit in one pass: the server hashes it while it streams in
    and answers its sha256, to name in the commit as an `lfsFile`. (The LFS protocol needs
    the hash before the upload, which costs the client a second read of every file.) A client
    that knows the hash already may send it as `sha256`: other bytes are then refused (400,
    ChecksumMismatch) and nothing is stored. Either way the hash that counts is the server's.
    The blob is invisible until a commit names it."""
    if sha256 is not None and not is_sha256(sha256):
        raise BadRequest("sha256 must be 64 lowercase hex digits.")
    services = ctx.services
    repo_pk, user_pk = ctx.repo.id, ctx.subject.user_id or 0
    # The repo check is done; release the request's database connection during a long upload.
    ctx.session.close()
    writer = services.store.writer(max_bytes=services.settings.max_file_bytes, expected_size=size)
    try:
        await stream_into(request, writer)
        oid = await run_in_threadpool(_finish_upload, services, writer, sha256, repo_pk, user_pk)
    finally:
        writer.abort()
    return {"oid": oid, "size": size}


def _multipart(services: Services, grant: UploadGrant, sig: str, upload_id: str) -> Multipart:
    """The store's multipart upload for this link: named by the oid and the link's signature, so
    that every replica finds the same one."""
    return services.store.multipart(f"{grant.oid}-{sig[:16]}", upload_id)


@router.put("/api/lfs/objects/{oid}/parts/{number}")
async def lfs_upload_part(
    request: Request, number: int, upload: str = Query("", max_length=1024), link: SignedLink = Depends(upload_link),
    services: Services = Depends(get_services),
) -> Response:
    grant, sig = _multipart_grant(link), link.signature
    parts = math.ceil(grant.size / grant.chunk)
    if not 1 <= number <= parts:
        raise BadRequest(f"Part number must be between 1 and {parts}.")
    expected = min(grant.chunk, grant.size - (number - 1) * grant.chunk)
    target = _multipart(services, grant, sig, upload)
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    async for piece in _batched(request):
        if received + len(piece) > expected:
            raise BadRequest(f"Part {number} is larger than the expected {expected} bytes.")
        await run_in_threadpool(target.write_part, number, (number - 1) * grant.chunk + received, piece)
        digest.update(piece)
        received += len(piece)
    if received != expected:
        raise BadRequest(f"Part {number} has {received} bytes; {expected} were expected. Upload it again.")
    etag = f'"{digest.hexdigest()}"'
    await run_in_threadpool(target.record_part, number, etag)
    return Response(status_code=200, headers={"ETag": etag})


class CompletionPart(BaseModel):
    partNumber: int
    etag: str = Field(max_length=200)


class CompletionBody(BaseModel):
    oid: str
    parts: list[CompletionPart] = Field(max_length=100_000)


@router.post("/api/lfs/objects/{oid}/complete")
def lfs_complete(
    body: CompletionBody, upload: str = Query("", max_length=1024), link: SignedLink = Depends(upload_link),
    services: Services = Depends(get_services),
) -> dict[str, str]:
    grant, sig = _multipart_grant(link), link.signature
    if body.oid != grant.oid:
        raise BadRequest("Completion names another oid than its link.")
    expected_parts = math.ceil(grant.size / grant.chunk)
    numbers = sorted(p.partNumber for p in body.parts)
    if numbers != list(range(1, expected_parts + 1)):
        raise BadRequest(f"Completion must list parts 1 to {expected_parts} exactly once each.")
    target = _multipart(services, grant, sig, upload)
    try:
        target.verify({p.partNumber: p.etag for p in body.parts}, grant.size, grant.oid)
    except ChecksumMismatch:
        target.abort()  # the bytes are not the declared ones: start again
        raise
    # (A part missing or an ETag that differs keeps the parts: send the part, complete again.)
    try:
        publishing.publish_upload(services.db, grant.oid, grant.size, grant.repo_id, grant.user_id, target.publish)
    finally:
        target.abort()
    return {"oid": grant.oid}


# ---------------------------------------------------------------- commit


InlineFile = Callable[[str, bytes], repos.Operation]


def parse_commit_payload(
    body: bytes | Iterable[bytes], max_operations: int, inline: InlineFile | None = None,
) -> tuple[dict[str, Any], list[repos.Operation]]:
    """The header and operations of an NDJSON commit payload, given whole (`bytes`) or line by
    line. `inline` turns each decoded inline file into its operation as soon as it is parsed
    (the commit route stores it, so that no more than one file's bytes is held at a time);
    without it, inline files stay in memory as `AddRegular`."""
    from releasehub.text import require_json_text, require_text

    lines = body.splitlines() if isinstance(body, bytes) else body
    header: dict[str, Any] | None = None
    operations: list[repos.Operation] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise InvalidCommit(f"Line {number} of the commit payload is not JSON.") from None
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            raise InvalidCommit(f"Line {number} must be an object with 'key' and 'value'.")
        key, value = item.get("key"), item["value"]
        if key == "header":
            for field in ("summary", "description", "parentCommit"):
                require_json_text(value.get(field), f"the commit header's {field!r}", InvalidCommit)
            header = value
            continue
        path = value.get("path")
        if not isinstance(path, str):
            raise InvalidCommit(f"Line {number} ({key}) has no 'path'.")
        require_text(path, f"The 'path' on line {number} ({key})", InvalidCommit)
        if key == "file":
            if value.get("encoding", "base64") != "base64" or not isinstance(value.get("content"), str):
                raise InvalidCommit(f"{path}: inline files must be base64 'content'.")
            try:
                content = base64.b64decode(value["content"], validate=True)
            except ValueError:  # binascii.Error, or a non-ASCII str
                raise InvalidCommit(f"{path}: 'content' is not valid base64.") from None
            del item, value  # the decoded bytes only, from here on
            operations.append(inline(path, content) if inline is not None else repos.AddRegular(path, content))
            del content
        elif key == "lfsFile":
            oid, size = value.get("oid"), value.get("size")
            if value.get("algo", "sha256") != "sha256" or not isinstance(oid, str) or not is_sha256(oid):
                raise InvalidCommit(f"{path}: lfsFile needs a sha256 'oid'.")
            if size is not None and (not isinstance(size, int) or size < 0):
                raise InvalidCommit(f"{path}: lfsFile 'size' must be a non-negative integer.")
            operations.append(repos.AddLfs(path, oid, size))
        elif key == "deletedFile":
            operations.append(repos.DeleteFile(path))
        elif key == "deletedFolder":
            operations.append(repos.DeleteFolder(path))
        else:
            raise InvalidCommit(f"Line {number}: unknown operation {key!r}.")
        if len(operations) > max_operations:
            raise PayloadTooLarge(f"A commit may hold at most {max_operations} operations; split it.")
    if header is None:
        raise InvalidCommit("The commit payload has no header line (key 'header').")
    return header, operations


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Commit payload exceeds {limit} bytes; upload large files through LFS.")


async def _spool(request: Request, limit: int, spool: BinaryIO) -> None:
    """Write the request body to `spool`, refusing it (413) once it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    received = 0
    async for piece in _batched(request):
        received += len(piece)
        if received > limit:
            raise _too_large(limit)
        await run_in_threadpool(spool.write, piece)
    await run_in_threadpool(spool.seek, 0)


def _spooled_lines(spool: BinaryIO, max_line: int) -> Iterator[bytes]:
    """The lines of the spooled payload, each read alone; a line longer than `max_line` (an
    inline file far over the inline limit) is refused without being read whole."""
    number = 0
    while True:
        line = spool.readline(max_line + 1)
        if not line:
            return
        number += 1
        if len(line) > max_line:
            raise PayloadTooLarge(
                f"Line {number} of the commit payload is longer than {max_line} bytes; "
                "upload large files through LFS (the client does so when preupload says 'lfs')."
            )
        yield line


def max_payload_line(max_regular_bytes: int) -> int:
    """Longest payload line read: an inline file at the limit, base64-encoded (4/3) with room
    for JSON escapes, plus 1 MiB for its path and the header's description."""
    return 2 * max_regular_bytes + 1024 * 1024


@router.post("/api/models/{namespace}/{name}/commit/{revision}")
async def commit(
    request: Request, revision: str, create_pr: str | None = Query(None),
    ctx: RepoContext = Depends(repo_access(Permission.REPO_WRITE)),
) -> dict[str, Any]:
    if create_pr not in (None, "0", "false"):
        raise BadRequest("Pull requests are not supported; commit to a branch instead.")
    settings = ctx.services.settings
    store = ctx.services.store
    branch = decode_segment(revision)
    # The body goes to disk (an unnamed file, gone when closed, even after a crash), and is
    # parsed line by line: each inline file is written to the blob store as it is read.
    with tempfile.TemporaryFile(prefix="commit-", dir=settings.tmp_dir) as spool:
        await _spool(request, settings.max_commit_bytes, spool)

        def inline(path: str, content: bytes) -> repos.Operation:
            return repos.store_inline(store, path, content, settings.max_regular_file_bytes)

        def write() -> tuple[str, publishing.Published]:
            lines = _spooled_lines(spool, max_payload_line(settings.max_regular_file_bytes))
            header, operations = parse_commit_payload(lines, settings.max_commit_operations, inline)
            summary = header.get("summary")
            description = header.get("description") or ""
            parent = header.get("parentCommit")
            if not isinstance(summary, str) or not isinstance(description, str):
                raise InvalidCommit("The header needs a 'summary' string.")
            if parent is not None and not isinstance(parent, str):
                raise InvalidCommit("'parentCommit' must be a commit sha.")
            published = publishing.commit(
                ctx.session, store, ctx.repo, ctx.subject, branch=branch,
                operations=operations, title=summary, message=description, parent_commit=parent,
                max_regular_bytes=settings.max_regular_file_bytes,
            )
            wake_dispatcher(request)
            return summary, published

        summary, published = await run_in_threadpool(write)
    oid = published.oid
    base = (settings.public_url or str(request.base_url)).rstrip("/")
    return {
        "success": True,
        "commitOid": oid,
        "commitUrl": f"{base}/{ctx.repo.repo_id}/commit/{oid}",
        "commitMessage": summary,
        "pullRequestUrl": None,
        "warnings": published.warnings,
    }
