"""Byte sources: random access to a file that may be on disk, in memory or behind an HTTP URL.

The header readers only ever ask for a few small byte ranges, so one `read(offset, length)`
interface is enough for all three. Every source either returns exactly the bytes asked for or
raises `AnalysisError` with a message a person can act on; a short read is never passed on,
because a parser fed a truncated buffer fails later with a confusing message.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

__all__ = [
    "AnalysisError",
    "ByteSource",
    "BytesSource",
    "FetchStats",
    "HttpRangeSource",
    "LocalFileSource",
    "http_error",
]


class AnalysisError(Exception):
    """Analysis could not go on; the message says what went wrong and what to do about it."""


@dataclass
class FetchStats:
    """Ranged reads made and body bytes received: the evidence that analysis read headers, not weights.

    Header readers run in parallel threads over one snapshot, so increments take a lock.
    """

    requests: int = 0
    bytes: int = 0

    def __post_init__(self) -> None:
        # Not a dataclass field, so `asdict` and `replace` never try to copy it.
        self._lock = threading.Lock()

    def add(self, nbytes: int) -> None:
        """Count one read that returned `nbytes` bytes."""
        with self._lock:
            self.requests += 1
            self.bytes += nbytes


class ByteSource(Protocol):
    """Random read access to one file of known size."""

    name: str

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes from `offset`, or `AnalysisError`."""
        ...


def _check_range(name: str, size: int, offset: int, length: int) -> None:
    if offset < 0 or length < 0:
        raise ValueError(f"read({offset}, {length}) on {name}: offset and length must not be negative")
    if offset + length > size:
        raise AnalysisError(
            f"{name} is too short: bytes {offset}..{offset + length - 1} were needed but the file has "
            f"only {size} bytes. The file is truncated or not in the format its name suggests."
        )


class LocalFileSource:
    """A file on disk. Each read opens the file, so one source can serve several threads."""

    def __init__(self, path: str | Path, *, stats: FetchStats | None = None) -> None:
        self.path = Path(path)
        self.name = str(path)
        self._stats = stats
        try:
            self._size = self.path.stat().st_size
        except FileNotFoundError:
            raise AnalysisError(f"{self.name} does not exist; check the path.") from None
        except OSError as exc:
            raise AnalysisError(f"Cannot read {self.name}: {exc.strerror or exc}.") from None
        if not self.path.is_file():
            raise AnalysisError(f"{self.name} is not a regular file.")

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        _check_range(self.name, self._size, offset, length)
        try:
            with open(self.path, "rb") as handle:
                handle.seek(offset)
                data = handle.read(length)
        except OSError as exc:
            raise AnalysisError(f"Cannot read {self.name}: {exc.strerror or exc}.") from None
        if len(data) != length:
            # The file shrank since it was stat-ed.
            raise AnalysisError(f"{self.name} changed while it was being read; try again.")
        if self._stats is not None:
            self._stats.add(length)
        return data


class BytesSource:
    """Bytes already in memory: tests, and small blobs a caller holds anyway."""

    def __init__(self, data: bytes, name: str = "<bytes>", *, stats: FetchStats | None = None) -> None:
        self._data = bytes(data)
        self.name = name
        self._stats = stats

    @property
    def size(self) -> int:
        return len(self._data)

    def read(self, offset: int, length: int) -> bytes:
        _check_range(self.name, len(self._data), offset, length)
        if self._stats is not None:
            self._stats.add(length)
        return self._data[offset : offset + length]


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _server_message(response: httpx.Response) -> str:
    """The error text a Hub-compatible server sent: JSON `error` first (full text), else `X-Error-Message`."""
    try:
        body = json.loads(response.content) if response.content else None
    except (ValueError, httpx.ResponseNotRead):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str) and error.strip():
        return error.strip()
    return str(response.headers.get("X-Error-Message", "")).strip()


def _repo_page(url: str) -> str | None:
    """`{endpoint}/{repo}` for a Hub `resolve` URL: the page where access to a gated repo is requested."""
    head, sep, _ = url.partition("/resolve/")
    return head if sep else None


def _request_page(response: httpx.Response) -> str | None:
    try:
        return _repo_page(str(response.request.url))
    except RuntimeError:  # a response built without a request (tests)
        return None


def http_error(response: httpx.Response, what: str, *, repo_page: str | None = None) -> AnalysisError:
    """An `AnalysisError` for a failed Hub request, carrying the server's own explanation.

    `what` says what was being fetched ("Listing files of org/model"). The Hub (and releasehub)
    put a machine code in `X-Error-Code` and the reason in the body or `X-Error-Message`; the
    reason is quoted because it often holds the one thing to do next (for example the command
    that requests access to a gated repo).
    """
    status = response.status_code
    code = response.headers.get("X-Error-Code", "")
    message = _server_message(response)
    said = f" The server said: {message}" if message else ""
    page = repo_page or _request_page(response)
    if code == "GatedRepo":
        where = f" on {page}" if page else " on the model page"
        return AnalysisError(
            f"{what}: the repository is gated ({status}). Request access{where}, then pass a token of an "
            f"account that was granted access (--token or HF_TOKEN).{said}"
        )
    if code == "RepoNotFound":
        return AnalysisError(
            f"{what}: the repository does not exist, or it is private and needs a token of an account that "
            f"may read it (--token or HF_TOKEN); the server answered {status}.{said}"
        )
    if status == 401:
        return AnalysisError(
            f"{what}: the server wants you to sign in (401). Pass --token or set HF_TOKEN to a token "
            f"that may read this repository.{said}"
        )
    if status == 403:
        return AnalysisError(
            f"{what}: your token may not read this (403). Use a token with read access to the "
            f"repository.{said}"
        )
    if status == 404:
        hint = {
            "RevisionNotFound": "the revision does not exist; check the branch, tag or commit",
            "EntryNotFound": "the file does not exist at this revision",
        }.get(code, "the repository or revision was not found; check the repo id (owner/name), the "
                    "revision and the endpoint")
        return AnalysisError(f"{what}: {hint} (404).{said}")
    return AnalysisError(f"{what}: the server answered {status} {response.reason_phrase}.{said}")


class HttpRangeSource:
    """A remote file read with one `Range` GET per `read()`; never downloads more than asked.

    A server that ignores `Range` answers 200 with the whole body, which for weights can be
    hundreds of gigabytes, so such a response is closed unread and reported instead. Redirects
    are followed because Hub `resolve` URLs redirect to a CDN; httpx drops `Authorization` when
    a redirect leaves the origin, so a token never travels to the CDN.
    """

    def __init__(self, client: httpx.Client, url: str, *, size: int | None = None,
                 stats: FetchStats | None = None, headers: Mapping[str, str] | None = None,
                 name: str | None = None) -> None:
        self._client = client
        self.url = url
        self.name = name or url
        self._size = size
        self._stats = stats
        self._headers = dict(headers or {})

    @property
    def size(self) -> int:
        """The file size; when it was not given, learnt from the `Content-Range` of a 1-byte read."""
        if self._size is None:
            self._fetch(0, 1)
        assert self._size is not None
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if self._size is not None:
            _check_range(self.name, self._size, offset, length)
        elif offset < 0 or length < 0:
            raise ValueError(f"read({offset}, {length}) on {self.name}: offset and length must not be negative")
        if length == 0:
            return b""
        return self._fetch(offset, length)

    def _fetch(self, offset: int, length: int) -> bytes:
        headers = {**self._headers, "Range": f"bytes={offset}-{offset + length - 1}",
                   # A compressed range would not be the bytes asked for.
                   "Accept-Encoding": "identity"}
        try:
            with self._client.stream("GET", self.url, headers=headers, follow_redirects=True) as response:
                body = self._body(response, offset, length)
        except httpx.HTTPError as exc:
            raise AnalysisError(f"Could not read {self.name}: {exc}. Check the endpoint URL and the network.") \
                from None
        if self._stats is not None:
            self._stats.add(len(body))
        return body

    def _body(self, response: httpx.Response, offset: int, length: int) -> bytes:
        status = response.status_code
        if status == 200:
            raise AnalysisError(
                f"{self.name}: the server does not support HTTP range requests (it answered 200 with the "
                "whole file). Reading only the header needs ranges; download the file and analyse the "
                "local copy instead."
            )
        if status == 416:
            raise AnalysisError(f"{self.name} is shorter than expected (416 for bytes {offset}..). "
                                "The file is truncated or not in the format its name suggests.")
        if status != 206:
            response.read()
            raise http_error(response, f"Reading {self.name}")
        self._learn_size(response, offset)
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > length:
                break
        if len(body) != length:
            raise AnalysisError(
                f"{self.name}: asked for {length} bytes at offset {offset} and received {len(body)}. "
                "The file is truncated or the server mishandles ranges."
            )
        return bytes(body)

    def _learn_size(self, response: httpx.Response, offset: int) -> None:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None:
            raise AnalysisError(f"{self.name}: the server answered 206 without a valid Content-Range header.")
        if int(match.group(1)) != offset:
            raise AnalysisError(f"{self.name}: asked for bytes from {offset}, the server sent them from "
                                f"{match.group(1)}.")
        if self._size is None:
            if match.group(3) == "*":
                raise AnalysisError(f"{self.name}: the server does not say how large the file is.")
            self._size = int(match.group(3))
