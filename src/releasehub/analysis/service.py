"""Access profiles of stored revisions: the server's own snapshot, and the per-revision cache.

What a profile may read follows the one access decision, file by file:
- files a stage or tier hides from the subject do not exist for the profile either;
- a file the subject may list but not download (a gated repo before the grant) contributes
  its name and size only: weight headers and config.json are content, so they are read only
  when `decide(REPO_DOWNLOAD, path)` allows it. The profile then sizes the release from the
  file sizes and says that the full profile needs access.
The cache key is the commit plus a digest of that view (readable files with their blob ids,
listed-only files by name and size), so subjects who see the same thing share one row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from releasehub.repos.models import Commit, Repo
from releasehub.repos.service import FileState
from releasehub.storage import BlobStore

from .models import CachedProfile
from .profile import PROFILE_VERSION, Options, build_profile
from .readers.source import AnalysisError, ByteSource, FetchStats, LocalFileSource
from .snapshot import MAX_TEXT_BYTES


class BlobSource:
    """Random access to a stored blob through the store's file object (any backend)."""

    def __init__(self, store: BlobStore, sha256: str, size: int, name: str, stats: FetchStats) -> None:
        self._store, self._sha, self._size, self.name, self._stats = store, sha256, size, name, stats

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self._size:
            raise AnalysisError(f"{self.name}: read of {length} bytes at {offset} is outside its {self._size} bytes")
        with self._store.open(self._sha) as f:
            f.seek(offset)
            data = f.read(length)
        if len(data) != length:
            raise AnalysisError(f"{self.name}: the stored blob is shorter than recorded; run `releasehub db check`")
        self._stats.add(length)
        return data


class StoredSnapshot:
    """One commit of a stored repo, as one subject sees it."""

    def __init__(self, store: BlobStore, repo_id: str, commit_sha: str, readable: Mapping[str, FileState],
                 listed_only: Mapping[str, int]) -> None:
        self.name = repo_id
        self.revision: str | None = commit_sha
        self.stats = FetchStats()
        self._store = store
        self._readable = dict(readable)
        self.listed_only = dict(listed_only)

    def files(self) -> dict[str, int]:
        return {path: state.size for path, state in self._readable.items()}

    def read_text(self, path: str, max_bytes: int = MAX_TEXT_BYTES) -> str | None:
        state = self._readable.get(path)
        if state is None:
            return None
        if state.size > max_bytes:
            raise AnalysisError(f"{path} is {state.size} bytes, more than the {max_bytes} bytes read as text")
        data = self.source(path).read(0, state.size)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise AnalysisError(f"{path} is not UTF-8 text") from None

    def source(self, path: str) -> ByteSource:
        state = self._readable.get(path)
        if state is None:
            raise AnalysisError(f"{path} is not readable in this view of {self.name}")
        local = self._store.local_path(state.sha256)
        if local is not None:
            return LocalFileSource(local, stats=self.stats)
        return BlobSource(self._store, state.sha256, state.size, path, self.stats)


def view_digest(readable: Mapping[str, FileState], listed_only: Mapping[str, int]) -> str:
    view = {"read": sorted((p, s.sha256) for p, s in readable.items()), "list": sorted(listed_only.items())}
    return hashlib.sha256(json.dumps(view, separators=(",", ":")).encode()).hexdigest()


def split_view(files: Mapping[str, FileState], may_list: Callable[[str], bool],
               may_read: Callable[[str], bool]) -> tuple[dict[str, FileState], dict[str, int]]:
    readable: dict[str, FileState] = {}
    listed: dict[str, int] = {}
    for path, state in files.items():
        if not may_list(path):
            continue
        if may_read(path):
            readable[path] = state
        else:
            listed[path] = state.size
    return readable, listed


def cached_profile(session: Session, store: BlobStore, repo: Repo, repo_id: str, commit: Commit,
                   readable: Mapping[str, FileState], listed_only: Mapping[str, int]) -> dict[str, Any]:
    """The profile of this view of `commit`, computed once and then read from the cache."""
    digest = view_digest(readable, listed_only)
    key = (CachedProfile.repo_id == repo.id, CachedProfile.commit_sha == commit.oid,
           CachedProfile.view_digest == digest, CachedProfile.version == PROFILE_VERSION)
    row = session.execute(select(CachedProfile.profile).where(*key)).scalar_one_or_none()
    if row is not None:
        return row
    profile = view_profile(store, repo_id, commit, readable, listed_only)
    # A concurrent request may have stored the same row: the unique key keeps one; both are equal.
    try:
        with session.begin_nested():
            session.add(CachedProfile(repo_id=repo.id, commit_sha=commit.oid, view_digest=digest,
                                      version=PROFILE_VERSION, profile=profile))
        session.commit()
    except IntegrityError:
        session.rollback()
    return profile


def view_profile(store: BlobStore, repo_id: str, commit: Commit, readable: Mapping[str, FileState],
                 listed_only: Mapping[str, int], options: Options | None = None) -> dict[str, Any]:
    """The profile of this view of `commit` under `options`, computed now (not cached: `cached_profile`
    keeps the default options' profile; the web page's context and accelerator choices come here)."""
    snapshot = StoredSnapshot(store, repo_id, commit.oid, readable, listed_only)
    profile = build_profile(snapshot, options=options or Options())
    if listed_only:
        profile["restricted"] = {
            "files": sorted(listed_only),
            "note": "These files are listed but their content needs access (a gate or a tier), so the profile "
                    "does not read them. Request access for a profile computed from their headers.",
        }
        if not profile["parameters"].get("total"):
            weights = sum(size for path, size in listed_only.items()
                          if path.endswith((".safetensors", ".gguf", ".bin", ".pt", ".pth")))
            if weights:
                profile["resourcing"]["listed_weight_bytes"] = weights
                profile["notes"].append(f"The weight files the gate closes hold {weights:,} bytes "
                                        f"({weights / 1e9:,.1f} GB) as published.")
    return profile
