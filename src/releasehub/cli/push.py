"""`releasehub push DIR REPO`: upload a folder as one commit, with a progress bar.

Every byte of a new file is read once. Large and binary files stream to
`POST /api/models/{repo}/blobs`, where the server hashes them while they arrive and answers
their sha256; small text files go inline in the commit. The commit itself is the Hub's NDJSON
commit, so the result is the same as an upload with `huggingface_hub` (which must read each file
twice: once for the sha256 the LFS protocol asks for before the upload, once to send it). No Xet,
no environment variable.

A file that changed at a path the branch already has is hashed here anyway (to see whether it
changed); its sha256 is then asked about with the LFS batch API first (a blob this repo already
has, say an older version brought back, is not sent again), and a sent one carries `sha256=` so
that the server refuses it when its own hash differs.

Speed (bench/upload.py): the upload goes out with `sendfile(2)` on a plain connection for http://
endpoints without a proxy (the kernel moves the page-cached file into the socket; no read into
Python, no copy per piece), else through httpx. The progress bar's module is imported only when
there is something to upload.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional
from urllib.parse import quote, urlencode, urlsplit

import httpx
import typer

from releasehub.cli.common import console, err_console
from releasehub.cli.remote import FIX_ENDPOINT, EndpointOption, LoginFileError, TokenOption, fail, resolve
from releasehub.repos.paths import git_blob_oid

if TYPE_CHECKING:
    from rich.progress import Progress

READ_CHUNK = 8 * 1024 * 1024
# sendfile(2) moves this much per call, between which the progress bar advances.
SEND_STEP = 64 * 1024 * 1024
_PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


class PushError(Exception):
    """A refusal from the server or a broken connection, shown as one line."""


def _files_of(folder: Path) -> list[Path]:
    skip = {".git", "__pycache__", ".cache"}
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part in skip for part in p.relative_to(folder).parts)
    )


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    message = response.headers.get("X-Error-Message")
    if not message:
        try:
            message = str(response.json().get("error"))
        except ValueError:
            message = response.text[:200]
    raise PushError(f"{what} failed ({response.status_code}): {message}")


def _read_chunks(path: Path, on_read: Any) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            on_read(len(chunk))
            yield chunk


def _sendfile_post(endpoint: str, target: str, headers: dict[str, str], path: Path,
                   on_sent: Callable[[int], None]) -> httpx.Response:
    """POST the file at `path` as the whole body to `endpoint` + `target` with sendfile(2), on a
    connection of its own (plain http:// only)."""
    import http.client

    url = urlsplit(endpoint)
    connection = http.client.HTTPConnection(url.hostname or "localhost", url.port or 80, timeout=600)
    try:
        size = path.stat().st_size
        connection.putrequest("POST", url.path.rstrip("/") + target, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(size)}.items():
            connection.putheader(name, value)
        connection.endheaders()
        assert connection.sock is not None
        refused: OSError | None = None
        with open(path, "rb") as handle:
            sent = 0
            try:
                while sent < size:
                    step = connection.sock.sendfile(handle, sent, min(SEND_STEP, size - sent))
                    if step == 0:
                        raise PushError(f"{path} became shorter while it was being uploaded; push again.")
                    sent += step
                    on_sent(step)
            except OSError as exc:  # the server may have refused the upload and closed: read why
                refused = exc
        try:
            answer = connection.getresponse()
            body = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            raise refused or OSError(str(exc)) from None
        return httpx.Response(answer.status, headers=answer.getheaders(), content=body)
    finally:
        connection.close()


def _is_plain_http(endpoint: str) -> bool:
    return urlsplit(endpoint).scheme.lower() == "http"


def _may_sendfile(endpoint: str) -> bool:
    """A plain http:// endpoint that no proxy variable redirects (httpx would honour one)."""
    return _is_plain_http(endpoint) and not any(os.environ.get(name) for name in _PROXY_VARIABLES)


class Pusher:
    def __init__(self, client: httpx.Client, repo_id: str, revision: str, endpoint: str = "",
                 headers: dict[str, str] | None = None) -> None:
        self.client = client
        self.repo_id = repo_id
        self.revision = revision
        self.api = f"/api/models/{repo_id}"
        self.endpoint = endpoint.rstrip("/")
        self.headers = headers or {}

    def ensure_repo(self, private: bool) -> None:
        namespace, name = self.repo_id.split("/", 1)
        response = self.client.post("/api/repos/create", json={
            "name": name, "organization": namespace, "type": "model",
            "visibility": "private" if private else "public",
        })
        if response.status_code != 409:  # an existing repo is fine
            _raise_for(response, "creating the repository")

    def upload_modes(self, folder: Path, files: list[Path]) -> dict[str, dict[str, Any]]:
        modes: dict[str, dict[str, Any]] = {}
        for start in range(0, len(files), 256):
            batch = files[start:start + 256]
            payload = {"files": [
                {"path": p.relative_to(folder).as_posix(), "size": p.stat().st_size,
                 "sample": base64.b64encode(p.open("rb").read(512)).decode()}
                for p in batch
            ]}
            response = self.client.post(f"{self.api}/preupload/{quote(self.revision, safe='')}", json=payload)
            _raise_for(response, "asking for upload modes")
            modes.update({item["path"]: item for item in response.json()["files"]})
        return modes

    def upload_blob(self, path: Path, progress: "Progress", task: Any, sha256: str | None = None) -> str:
        """Send the file; the server answers its sha256 (and checks it against `sha256` when given)."""
        size = path.stat().st_size
        params: dict[str, str | int] = {"size": size, **({"sha256": sha256} if sha256 else {})}

        def advance(sent: int) -> None:
            progress.advance(task, sent)

        if _may_sendfile(self.endpoint):
            response = _sendfile_post(self.endpoint, f"{self.api}/blobs?{urlencode(params)}", self.headers, path,
                                      advance)
        else:
            response = self.client.post(
                f"{self.api}/blobs", params=params, headers={"Content-Length": str(size)},
                content=_read_chunks(path, advance), timeout=httpx.Timeout(60, read=600),
            )
        _raise_for(response, f"uploading {path.name}")
        oid = str(response.json()["oid"])
        if sha256 is not None and oid != sha256:  # a server that ignored sha256= and stored something else
            raise PushError(f"uploading {path.name} failed: the server stored sha256 {oid}, not {sha256}.")
        return oid

    def stored(self, hashed: dict[str, tuple[str, int]]) -> set[str]:
        """Which of these (sha256, size) this repo already has blobs for that the pusher may name:
        the LFS batch API answers no upload action for them (and never tells of other repos' blobs)."""
        if not hashed:
            return set()
        objects = [{"oid": oid, "size": size} for oid, size in set(hashed.values())]
        response = self.client.post(
            f"/{self.repo_id}.git/info/lfs/objects/batch",
            json={"operation": "upload", "transfers": ["basic"], "objects": objects, "hash_algo": "sha256"},
            headers={"Accept": "application/vnd.git-lfs+json"},
        )
        _raise_for(response, "asking which files the server has")
        return {str(item["oid"]) for item in response.json().get("objects", [])
                if not item.get("actions") and not item.get("error")}

    def commit(self, lines: list[dict[str, Any]], message: str) -> tuple[str, list[str]]:
        header = {"key": "header", "value": {"summary": message, "description": ""}}
        body = b"".join(json.dumps(item).encode() + b"\n" for item in [header, *lines])
        response = self.client.post(
            f"{self.api}/commit/{quote(self.revision, safe='')}", content=body,
            headers={"Content-Type": "application/x-ndjson"},
        )
        _raise_for(response, "committing")
        answer = response.json()
        return str(answer["commitOid"]), [str(w) for w in answer.get("warnings") or []]


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _compare(path: Path, mode: dict[str, Any], hashed: dict[str, tuple[str, int]], rel: str) -> bool:
    """Same content as at the branch head? Preupload answers the head's oid: a git blob sha1 for a
    regular file, a sha256 for an LFS one (hashed here, which costs a read instead of an upload;
    a changed LFS file's (sha256, size) goes into `hashed`)."""
    remote = mode.get("oid")
    if not remote:
        return False
    if mode["uploadMode"] == "lfs":
        local = _sha256_of(path)
        if local == remote:
            return True
        hashed[rel] = (local, path.stat().st_size)
        return False
    return git_blob_oid(path.read_bytes()) == remote


def _operations(pusher: Pusher, folder: Path, todo: list[Path], modes: dict[str, dict[str, Any]],
                progress: "Progress", task: Any, hashed: dict[str, tuple[str, int]] | None = None,
                stored: set[str] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Upload the changed files (but no LFS file whose sha256 is in `stored`); return the commit
    lines and how many files were not sent because the server has them."""
    hashed, stored = hashed or {}, stored or set()
    lines: list[dict[str, Any]] = []
    reused = 0
    for path in todo:
        rel = path.relative_to(folder).as_posix()
        if modes[rel]["uploadMode"] == "lfs":
            known = hashed.get(rel)
            if known is not None and known[0] in stored:
                oid = known[0]
                reused += 1
                progress.advance(task, path.stat().st_size)
            else:
                oid = pusher.upload_blob(path, progress, task, known[0] if known else None)
            lines.append({"key": "lfsFile", "value": {"path": rel, "algo": "sha256", "oid": oid,
                                                       "size": path.stat().st_size}})
            continue
        content = path.read_bytes()
        progress.advance(task, len(content))
        lines.append({"key": "file", "value": {"path": rel, "encoding": "base64",
                                                "content": base64.b64encode(content).decode()}})
    return lines, reused


def push(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="Folder to upload."),
    repo_id: str = typer.Argument(..., help="NAMESPACE/NAME of the repository."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
    revision: str = typer.Option("main", "--revision", help="Branch to commit to."),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="Commit message."),
    private: bool = typer.Option(False, "--private", help="Create the repo as private if it does not exist."),
) -> None:
    """Upload FOLDER to REPO as one commit (creating the repo if needed)."""
    # The server and token as every command finds them: flags, HF_ENDPOINT/HF_TOKEN, or `releasehub login`.
    try:
        resolved = resolve(endpoint, token)
    except LoginFileError as exc:
        raise fail(str(exc)) from None
    if not resolved.endpoint:
        raise fail(f"no server: {FIX_ENDPOINT}.")
    endpoint, token = resolved.endpoint, resolved.token
    if repo_id.count("/") != 1:
        err_console.print(f"[red]error:[/red] repo must be NAMESPACE/NAME, got {repo_id!r}.")
        raise typer.Exit(2)
    files = _files_of(folder)
    if not files:
        err_console.print(f"[red]error:[/red] {folder} holds no files to upload.")
        raise typer.Exit(2)
    total = sum(p.stat().st_size for p in files)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # A plain http:// server reached without a proxy needs no CA bundle (loading certifi's costs
    # ~0.1 s of start-up); this context trusts nothing, so it fails closed should TLS be asked for.
    verify: ssl.SSLContext | bool = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) if _may_sendfile(endpoint) else True
    try:
        with httpx.Client(base_url=endpoint.rstrip("/"), headers=headers, timeout=60, verify=verify) as client:
            pusher = Pusher(client, repo_id, revision, endpoint, headers)
            pusher.ensure_repo(private)
            modes = pusher.upload_modes(folder, files)
            # Unchanged files are found before any bar is drawn: a second push of the same folder says
            # "nothing to push" at once instead of showing a full upload first.
            hashed: dict[str, tuple[str, int]] = {}
            todo = []
            for path in files:
                rel = path.relative_to(folder).as_posix()
                if not _compare(path, modes[rel], hashed, rel):
                    todo.append(path)
            if not todo:
                console.print(f"nothing to push: {repo_id}@{revision} already has these files")
                return
            stored = pusher.stored(hashed)
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                       TransferSpeedColumn)

            progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn(), console=console, transient=False,
            )
            with progress:
                task = progress.add_task(f"upload {len(todo)} files", total=sum(p.stat().st_size for p in todo))
                lines, reused = _operations(pusher, folder, todo, modes, progress, task, hashed, stored)
            changed = len(lines)
            oid, warnings = pusher.commit(lines, message or f"Upload {len(files)} files with releasehub push")
    except PushError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except (httpx.HTTPError, OSError) as exc:
        # The server is unreachable or the connection broke: one line, not a traceback.
        err_console.print(f"[red]error:[/red] cannot talk to {endpoint}: {exc}")
        raise typer.Exit(1) from None
    not_sent = f", {reused} of them already on the server (not sent again)" if reused else ""
    console.print(f"pushed {changed} changed files of {len(files)} ({total:,} bytes{not_sent}) to "
                  f"{repo_id}@{revision}: commit {oid}", soft_wrap=True)
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
