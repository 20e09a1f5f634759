"""`releasehub push DIR REPO`: upload a folder as one commit, with a progress bar.

Every byte is read once. Large and binary files stream to `POST /api/models/{repo}/blobs`,
where the server hashes them while they arrive and answers their sha256; small text files go
inline in the commit. The commit itself is the Hub's NDJSON commit, so the result is the same
as an upload with `huggingface_hub` (which must read each file twice: once for the sha256 the
LFS protocol asks for before the upload, once to send it). No Xet, no environment variable.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import quote

import httpx
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from releasehub.cli.common import console, err_console
from releasehub.cli.remote import FIX_ENDPOINT, EndpointOption, LoginFileError, TokenOption, fail, resolve
from releasehub.repos.paths import git_blob_oid

READ_CHUNK = 8 * 1024 * 1024


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


class Pusher:
    def __init__(self, client: httpx.Client, repo_id: str, revision: str) -> None:
        self.client = client
        self.repo_id = repo_id
        self.revision = revision
        self.api = f"/api/models/{repo_id}"

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

    def upload_blob(self, path: Path, progress: Progress, task: Any) -> str:
        size = path.stat().st_size
        response = self.client.post(
            f"{self.api}/blobs", params={"size": size}, headers={"Content-Length": str(size)},
            content=_read_chunks(path, lambda n: progress.advance(task, n)),
            timeout=httpx.Timeout(60, read=600),
        )
        _raise_for(response, f"uploading {path.name}")
        return str(response.json()["oid"])

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


def _unchanged(path: Path, mode: dict[str, Any]) -> bool:
    """Same content as at the branch head? Preupload answers the head's oid: a git blob sha1 for a
    regular file, a sha256 for an LFS one (hashed here, which costs a read instead of an upload)."""
    remote = mode.get("oid")
    if not remote:
        return False
    if mode["uploadMode"] == "lfs":
        return _sha256_of(path) == remote
    return git_blob_oid(path.read_bytes()) == remote


def _operations(pusher: Pusher, folder: Path, todo: list[Path], modes: dict[str, dict[str, Any]],
                progress: Progress, task: Any) -> list[dict[str, Any]]:
    """Upload the changed files; return the commit lines."""
    lines: list[dict[str, Any]] = []
    for path in todo:
        rel = path.relative_to(folder).as_posix()
        if modes[rel]["uploadMode"] == "lfs":
            oid = pusher.upload_blob(path, progress, task)
            lines.append({"key": "lfsFile", "value": {"path": rel, "algo": "sha256", "oid": oid,
                                                       "size": path.stat().st_size}})
            continue
        content = path.read_bytes()
        progress.advance(task, len(content))
        lines.append({"key": "file", "value": {"path": rel, "encoding": "base64",
                                                "content": base64.b64encode(content).decode()}})
    return lines


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
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=console, transient=False,
    )
    try:
        with httpx.Client(base_url=endpoint.rstrip("/"), headers=headers, timeout=60) as client:
            pusher = Pusher(client, repo_id, revision)
            pusher.ensure_repo(private)
            modes = pusher.upload_modes(folder, files)
            # Unchanged files are found before any bar is drawn: a second push of the same folder says
            # "nothing to push" at once instead of showing a full upload first.
            todo = [p for p in files if not _unchanged(p, modes[p.relative_to(folder).as_posix()])]
            if not todo:
                console.print(f"nothing to push: {repo_id}@{revision} already has these files")
                return
            with progress:
                task = progress.add_task(f"upload {len(todo)} files", total=sum(p.stat().st_size for p in todo))
                lines = _operations(pusher, folder, todo, modes, progress, task)
            changed = len(lines)
            oid, warnings = pusher.commit(lines, message or f"Upload {len(files)} files with releasehub push")
    except PushError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except (httpx.HTTPError, OSError) as exc:
        # The server is unreachable or the connection broke: one line, not a traceback.
        err_console.print(f"[red]error:[/red] cannot talk to {endpoint}: {exc}")
        raise typer.Exit(1) from None
    console.print(f"pushed {changed} changed files of {len(files)} ({total:,} bytes) to {repo_id}@{revision}: "
                  f"commit {oid}", soft_wrap=True)
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
