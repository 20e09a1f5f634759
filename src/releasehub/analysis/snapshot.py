"""What an access profile is built from: a file list, a few small text files and byte ranges.

A `Snapshot` is one revision of a release wherever it lives: a local directory, a single local
file, or a repo on any Hub-compatible endpoint (huggingface.co or a releasehub server). The
server adds its own snapshot over its blob store, so this module imports nothing from the
server or the database.

`load_weights` turns a snapshot into a `WeightsSummary` by reading headers only: one ranged
read per safetensors shard (two for a header longer than the first read), a few for a GGUF file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar
from urllib.parse import quote

import httpx

from releasehub.analysis.readers import (
    AnalysisError,
    ByteSource,
    FetchStats,
    HttpRangeSource,
    LocalFileSource,
    WeightsSummary,
    http_error,
    parse_index,
    read_gguf_header,
    read_header,
    split_base_name,
    summarize_gguf,
    summarize_safetensors,
)

__all__ = [
    "INDEX_FILE",
    "MAX_TEXT_BYTES",
    "HubSnapshot",
    "LocalDirSnapshot",
    "LocalFileSnapshot",
    "Snapshot",
    "gguf_variant_files",
    "load_gguf_variants",
    "load_weights",
    "quantization_config",
    "safetensors_files",
]

INDEX_FILE = "model.safetensors.index.json"
MAX_TEXT_BYTES = 4 << 20
#: Indexes of large MoE checkpoints list ~100k tensors: several megabytes of JSON.
MAX_INDEX_BYTES = 64 << 20
#: Folders of tooling, not of the release: git internals and `hf download --local-dir` metadata.
_IGNORED_DIRS = frozenset({".git", ".cache"})

Progress = Callable[[int, int], None]
H = TypeVar("H")


class Snapshot(Protocol):
    """One revision of a release: its files, small text files, and random access to any file."""

    name: str
    revision: str | None
    stats: FetchStats

    def files(self) -> dict[str, int]:
        """Every file path (recursive, '/' separators) -> size in bytes."""
        ...

    def read_text(self, path: str, max_bytes: int = MAX_TEXT_BYTES) -> str | None:
        """The file as UTF-8 text; None when absent; `AnalysisError` when larger than `max_bytes`."""
        ...

    def source(self, path: str) -> ByteSource:
        ...


def _relative(path: str) -> str:
    """A repo path that cannot escape the snapshot root."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise AnalysisError(f"{path!r} is not a valid file path inside a model repository.")
    return path


def _too_large(name: str, path: str, size: int, max_bytes: int) -> AnalysisError:
    return AnalysisError(f"{path} in {name} is {size} bytes, more than the {max_bytes} bytes read as text; "
                         "it is not a config file releasehub can use.")


def _decode(name: str, path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AnalysisError(f"{path} in {name} is not UTF-8 text.") from None


class LocalDirSnapshot:
    """A model directory on disk (a checkout, `hf download --local-dir`, or a Hub cache snapshot).

    Symlinked files are followed, because Hub cache snapshots are symlinks into a blob folder.
    The file list is taken once, on first use.
    """

    def __init__(self, path: str | Path) -> None:
        self.root = Path(path)
        if not self.root.is_dir():
            raise AnalysisError(f"{path} is not a directory; pass a model directory or a single model file.")
        self.name = str(path)
        self.revision: str | None = None
        self.stats = FetchStats()
        self._files: dict[str, int] | None = None

    def files(self) -> dict[str, int]:
        if self._files is None:
            self._files = dict(sorted(self._walk()))
        return dict(self._files)

    def _walk(self) -> Iterable[tuple[str, int]]:
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = [d for d in dirs if d not in _IGNORED_DIRS]
            relative = Path(folder).relative_to(self.root)
            for file in names:
                try:
                    size = (Path(folder) / file).stat().st_size
                except OSError:
                    continue  # a dangling symlink: an unfinished download, not a file of the release
                yield (relative / file).as_posix(), size

    def read_text(self, path: str, max_bytes: int = MAX_TEXT_BYTES) -> str | None:
        size = self.files().get(_relative(path))
        if size is None:
            return None
        if size > max_bytes:
            raise _too_large(self.name, path, size, max_bytes)
        return _decode(self.name, path, (self.root / path).read_bytes())

    def source(self, path: str) -> ByteSource:
        if _relative(path) not in self.files():
            raise AnalysisError(f"There is no file {path} in {self.name}.")
        return LocalFileSource(self.root / path, stats=self.stats)


class LocalFileSnapshot:
    """A single file: a `.safetensors` or `.gguf` model file, or a config file on its own.

    A JSON file is presented as `config.json` whatever its name, so a config without weights
    profiles like a repo holding just that config.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise AnalysisError(f"{path} is not a file.")
        suffix = self.path.suffix.lower()
        if suffix not in (".safetensors", ".gguf", ".json"):
            raise AnalysisError(f"{path} is not a .safetensors, .gguf or config.json file; pass one of those, or "
                                "the model directory.")
        self.key = "config.json" if suffix == ".json" else self.path.name
        self.name = str(path)
        self.revision: str | None = None
        self.stats = FetchStats()

    def files(self) -> dict[str, int]:
        return {self.key: self.path.stat().st_size}

    def read_text(self, path: str, max_bytes: int = MAX_TEXT_BYTES) -> str | None:
        if path != self.key:
            return None
        size = self.path.stat().st_size
        if size > max_bytes:
            raise _too_large(self.name, path, size, max_bytes)
        return _decode(self.name, path, self.path.read_bytes())

    def source(self, path: str) -> ByteSource:
        if path != self.key:
            raise AnalysisError(f"{self.name} is a single file; there is no {path} beside it.")
        return LocalFileSource(self.path, stats=self.stats)


class HubSnapshot:
    """A repo revision on a Hub-compatible endpoint, pinned to a commit sha on construction.

    The revision is resolved at once so that a typo or a missing token fails here, with the
    server's explanation, and so every later read sees the same commit even if the branch moves.
    `stats` counts the ranged reads of weight files only; API calls and small text files are
    not weights. Pass `client` to share connections; otherwise the snapshot owns one (close it,
    or use the snapshot as a context manager).
    """

    def __init__(self, endpoint: str, repo_id: str, *, revision: str | None = None, token: str | None = None,
                 client: httpx.Client | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.repo_id = repo_id.strip("/")
        self.name = self.repo_id
        self.stats = FetchStats()
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=httpx.Timeout(60.0, connect=15.0))
        self._files: dict[str, int] | None = None
        try:
            self.revision: str | None = self._resolve(revision)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def page(self) -> str:
        return f"{self.endpoint}/{self.repo_id}"

    def _get(self, url: str, what: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        try:
            response = self._client.get(url, params=params, headers=self._headers, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise AnalysisError(f"{what}: could not reach {self.endpoint} ({exc}). Check the endpoint URL and "
                                "the network.") from None
        if response.status_code >= 400:
            raise http_error(response, what, repo_page=self.page)
        return response

    def _json(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise AnalysisError(f"{what}: {self.endpoint} did not answer JSON; is it a Hugging Face Hub "
                                "compatible endpoint?") from None

    def _resolve(self, revision: str | None) -> str:
        url = f"{self.endpoint}/api/models/{self.repo_id}"
        if revision:
            url += f"/revision/{quote(revision, safe='')}"
        what = f"Looking up {self.repo_id} at {revision or 'its default branch'} on {self.endpoint}"
        info = self._json(self._get(url, what), what)
        sha = info.get("sha") if isinstance(info, dict) else None
        if not isinstance(sha, str) or not sha:
            raise AnalysisError(f"{what}: the answer has no commit sha; the endpoint is not Hub-compatible.")
        return sha

    def _resolve_url(self, path: str) -> str:
        return f"{self.endpoint}/{self.repo_id}/resolve/{self.revision}/{quote(_relative(path))}"

    def files(self) -> dict[str, int]:
        if self._files is None:
            self._files = self._list_files()
        return dict(self._files)

    def _list_files(self) -> dict[str, int]:
        what = f"Listing the files of {self.repo_id}"
        url: str | None = f"{self.endpoint}/api/models/{self.repo_id}/tree/{self.revision}"
        params: dict[str, str] | None = {"recursive": "true"}
        files: dict[str, int] = {}
        seen: set[str] = set()
        while url is not None and url not in seen:
            seen.add(url)
            response = self._get(url, what, params)
            entries = self._json(response, what)
            if not isinstance(entries, list):
                raise AnalysisError(f"{what}: the tree listing is not a list; the endpoint is not Hub-compatible.")
            for entry in entries:
                if isinstance(entry, dict) and entry.get("type") == "file":
                    files[str(entry["path"])] = int(entry.get("size") or 0)
            following = response.links.get("next", {}).get("url")
            # The next link carries the whole query, cursor included.
            url, params = (str(response.url.join(following)), None) if following else (None, None)
        return dict(sorted(files.items()))

    def read_text(self, path: str, max_bytes: int = MAX_TEXT_BYTES) -> str | None:
        size = self.files().get(path)
        if size is None:
            return None
        if size > max_bytes:
            raise _too_large(self.name, path, size, max_bytes)
        response = self._get(self._resolve_url(path), f"Reading {path} of {self.repo_id}")
        return _decode(self.name, path, response.content)

    def source(self, path: str) -> ByteSource:
        size = self.files().get(path)
        if size is None:
            raise AnalysisError(f"There is no file {path} in {self.repo_id} at {self.revision}.")
        return HttpRangeSource(self._client, self._resolve_url(path), size=size, stats=self.stats,
                               headers=self._headers, name=f"{self.repo_id}/{path}")


# ------------------------------------------------------------------------------- weights


def safetensors_files(snapshot: Snapshot) -> list[str]:
    """The safetensors files that make up the checkpoint, in order.

    The index decides when there is one. Without it, every top-level `.safetensors` file is a
    shard, except that Mistral-style `consolidated*.safetensors` files (the same weights under
    other names) are dropped when transformers-style files sit beside them: counting both would
    double the model.
    """
    files = snapshot.files()
    if INDEX_FILE in files:
        text = snapshot.read_text(INDEX_FILE, max_bytes=MAX_INDEX_BYTES)
        shards = parse_index(text or "", INDEX_FILE)
        missing = [shard for shard in shards if shard not in files]
        if missing:
            raise AnalysisError(f"{INDEX_FILE} of {snapshot.name} lists {', '.join(missing[:3])}"
                                f"{' and more' if len(missing) > 3 else ''}, which the repo does not have; "
                                "the upload is incomplete.")
        return shards
    top = sorted(path for path in files if "/" not in path and path.endswith(".safetensors"))
    regular = [path for path in top if not path.startswith("consolidated")]
    return regular or top


def _is_projector(name: str) -> bool:
    """Multimodal projector files (`mmproj-*.gguf`) accompany a model; they are not the model."""
    return "mmproj" in name.rsplit("/", 1)[-1].lower()


def gguf_variant_files(snapshot: Snapshot) -> dict[str, list[str]]:
    """GGUF files grouped by model: each variant (Q4_K_M, Q8_0, ...) with all parts of a split one.

    Variants are ordered by name, projectors last, so the first is the model itself.
    """
    groups: dict[str, list[str]] = {}
    for path in sorted(snapshot.files()):
        if path.endswith(".gguf"):
            groups.setdefault(split_base_name(path), []).append(path)
    return {name: groups[name] for name in sorted(groups, key=lambda name: (_is_projector(name), name))}


def _json_object(snapshot: Snapshot, path: str) -> dict[str, Any] | None:
    text = snapshot.read_text(path)
    if text is None:
        return None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnalysisError(f"{path} of {snapshot.name} is not valid JSON ({exc.msg} at line {exc.lineno}).") \
            from None
    if not isinstance(document, dict):
        raise AnalysisError(f"{path} of {snapshot.name} is not a JSON object.")
    return document


def quantization_config(snapshot: Snapshot) -> dict[str, Any] | None:
    """config.json's `quantization_config` (or older `compression_config`), else AutoGPTQ's quantize_config.json."""
    config = _json_object(snapshot, "config.json")
    if config is not None:
        for key in ("quantization_config", "compression_config"):
            if isinstance(config.get(key), dict):
                return dict(config[key])
    if "quantize_config.json" in snapshot.files():
        return _json_object(snapshot, "quantize_config.json")
    return None


def _read_headers(snapshot: Snapshot, paths: list[str], reader: Callable[[ByteSource], H],
                  progress: Progress | None, max_workers: int) -> dict[str, H]:
    """Read the headers of `paths` in parallel; progress is reported from the calling thread."""
    results: dict[str, H] = {}
    if not paths:
        return results
    pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(paths))),
                              thread_name_prefix="releasehub-headers")
    try:
        futures: dict[Future[H], str] = {pool.submit(reader, snapshot.source(path)): path for path in paths}
        for done, future in enumerate(as_completed(futures), start=1):
            results[futures[future]] = future.result()
            if progress is not None:
                progress(done, len(paths))
    finally:
        # On an error, shards not yet started are not read at all.
        pool.shutdown(wait=True, cancel_futures=True)
    return {path: results[path] for path in paths}


def load_weights(snapshot: Snapshot, *, progress: Progress | None = None,
                 max_workers: int = 8) -> WeightsSummary | None:
    """Summarise the weights of a snapshot from their headers; None when it has no weights.

    Safetensors come first. Otherwise GGUF: when a repo offers several GGUF variants, the first
    by name is summarised (see `load_gguf_variants` for all of them). `progress(done, total)`
    is called after each file's header is read.
    """
    shards = safetensors_files(snapshot)
    if shards:
        config = quantization_config(snapshot)
        return summarize_safetensors(_read_headers(snapshot, shards, read_header, progress, max_workers), config)
    variants = gguf_variant_files(snapshot)
    if not variants:
        return None
    first = next(iter(variants.values()))
    return summarize_gguf(_read_headers(snapshot, first, read_gguf_header, progress, max_workers))


def load_gguf_variants(snapshot: Snapshot, *, progress: Progress | None = None,
                       max_workers: int = 8) -> dict[str, WeightsSummary]:
    """Every GGUF model of a snapshot, keyed by base name (`model-Q4_K_M`), in `gguf_variant_files` order."""
    variants = gguf_variant_files(snapshot)
    paths = [path for parts in variants.values() for path in parts]
    headers = _read_headers(snapshot, paths, read_gguf_header, progress, max_workers)
    return {name: summarize_gguf({path: headers[path] for path in parts}) for name, parts in variants.items()}
