"""`releasehub push DIR REPO`: upload a folder as one commit, with a progress bar.

It drives the unchanged `huggingface_hub` client over the LFS protocol (Xet switched off for
this process, since the server does not speak Xet), so what it exercises is exactly what any
Hub client does. Each file is read twice on this side (sha256, then upload); the server hashes
once more while the bytes stream in and rejects them if they do not match.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from releasehub.cli.common import console, err_console


class _CountingReader(io.RawIOBase):
    """A read-only file that reports every byte read (hashing pass, then upload pass)."""

    def __init__(self, path: Path, on_read: Callable[[int], None]) -> None:
        self._file = open(path, "rb", buffering=0)
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        count = self._file.readinto(buffer)
        if count:
            self._on_read(count)
        return count or 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
        super().close()


def _files_of(folder: Path) -> list[Path]:
    skip = {".git", "__pycache__", ".cache"}
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part in skip for part in p.relative_to(folder).parts)
    )


def push(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="Folder to upload."),
    repo_id: str = typer.Argument(..., help="NAMESPACE/NAME of the repository."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", envvar="HF_ENDPOINT", help="Server URL."),
    token: Optional[str] = typer.Option(None, "--token", envvar="HF_TOKEN", help="Write token."),
    revision: str = typer.Option("main", "--revision", help="Branch to commit to."),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="Commit message."),
    private: bool = typer.Option(False, "--private", help="Create the repo as private if it does not exist."),
) -> None:
    """Upload FOLDER to REPO as one commit (creating the repo if needed)."""
    # Must be set before huggingface_hub decides on a transfer: the server speaks LFS, not Xet.
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    from huggingface_hub import CommitOperationAdd, HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.errors import HTTPError as TransportError  # httpx's, as the client uses it
    from huggingface_hub.utils import disable_progress_bars

    constants.HF_HUB_DISABLE_XET = True
    disable_progress_bars()
    if not endpoint:
        err_console.print("[red]error:[/red] no server: pass --endpoint URL or set HF_ENDPOINT.")
        raise typer.Exit(2)
    if "/" not in repo_id:
        err_console.print(f"[red]error:[/red] repo must be NAMESPACE/NAME, got {repo_id!r}.")
        raise typer.Exit(2)
    files = _files_of(folder)
    if not files:
        err_console.print(f"[red]error:[/red] {folder} holds no files to upload.")
        raise typer.Exit(2)
    total = sum(p.stat().st_size for p in files)
    api = HfApi(endpoint=endpoint.rstrip("/"), token=token)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=console, transient=False,
    )
    readers: list[_CountingReader] = []
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        with progress:
            # Every byte is read twice: once to hash it, once to send it.
            task = progress.add_task(f"hash + upload {len(files)} files", total=2 * total)
            operations = []
            for path in files:
                reader = _CountingReader(path, lambda n: progress.advance(task, n))
                readers.append(reader)
                operations.append(CommitOperationAdd(
                    path_in_repo=path.relative_to(folder).as_posix(),
                    path_or_fileobj=io.BufferedReader(reader, buffer_size=8 * 1024 * 1024),
                ))
            info = api.create_commit(
                repo_id, operations, commit_message=message or f"Upload {len(files)} files with releasehub push",
                revision=revision,
            )
            progress.update(task, completed=2 * total)
    except HfHubHTTPError as exc:
        err_console.print(f"[red]error:[/red] {exc.server_message or exc}")
        raise typer.Exit(1) from None
    except (TransportError, OSError) as exc:
        # The server is unreachable or the connection broke: one line, not a traceback.
        err_console.print(f"[red]error:[/red] cannot talk to {endpoint}: {exc}")
        raise typer.Exit(1) from None
    finally:
        for reader in readers:
            reader.close()
    console.print(f"pushed {len(files)} files ({total:,} bytes) to {repo_id}@{revision}: commit {info.oid}",
                  soft_wrap=True)
