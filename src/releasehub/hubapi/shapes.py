"""The Hub's JSON shapes for repos, trees and refs."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from releasehub.repos.models import Commit, Repo
from releasehub.repos.paths import lfs_pointer
from releasehub.repos.service import FileState, TreeEntry


def iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def tree_entry(entry: TreeEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"type": entry.type, "oid": entry.oid, "size": entry.size, "path": entry.path}
    if entry.type == "file" and entry.lfs and entry.sha256:
        out["lfs"] = {
            "oid": entry.sha256,
            "size": entry.size,
            "pointerSize": len(lfs_pointer(entry.sha256, entry.size)),
        }
    return out


def sibling(path: str, state: FileState, with_blobs: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"rfilename": path}
    if with_blobs:
        out["size"] = state.size
        out["blobId"] = state.git_oid
        if state.lfs:
            out["lfs"] = {
                "sha256": state.sha256,
                "size": state.size,
                "pointerSize": len(lfs_pointer(state.sha256, state.size)),
            }
    return out


def card_tags(card: dict[str, Any] | None) -> list[str]:
    if not card:
        return []
    tags: list[str] = []
    raw = card.get("tags")
    if isinstance(raw, list):
        tags.extend(str(t) for t in raw)
    elif isinstance(raw, str):
        tags.append(raw)
    library = card.get("library_name")
    if isinstance(library, str):
        tags.append(library)
    languages = card.get("language")
    for lang in languages if isinstance(languages, list) else [languages] if languages else []:
        tags.append(str(lang))
    license_ = card.get("license")
    if isinstance(license_, str):
        tags.append(f"license:{license_}")
    seen: set[str] = set()
    return [t for t in tags if not (t in seen or seen.add(t))]  # type: ignore[func-returns-value]


# How the card's policy problems begin (access.service.apply_card): shown to the team only.
POLICY_ERROR_PREFIX = "releasehub policy in the card"


def model_info(
    repo: Repo,
    commit: Commit,
    files: dict[str, FileState],
    *,
    with_blobs: bool,
    used_storage: int | None = None,
    config: dict[str, Any] | None = None,
    team: bool = False,
) -> dict[str, Any]:
    card = commit.card_data
    if card is not None and not team and "releasehub" in card:
        # The card's `releasehub:` block (stage and component globs) is the releasing team's.
        card = {k: v for k, v in card.items() if k != "releasehub"}
    info: dict[str, Any] = {
        "_id": f"{repo.id:024x}",
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "author": repo.namespace,
        "sha": commit.oid,
        "lastModified": iso(commit.created_at),
        "createdAt": iso(repo.created_at),
        "private": repo.private,
        "gated": repo.gated or False,
        "visibility": repo.visibility,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": card_tags(card),
        "siblings": [sibling(p, files[p], with_blobs) for p in sorted(files)],
    }
    if card is not None:
        info["cardData"] = card
        for key in ("pipeline_tag", "library_name"):
            if isinstance(card.get(key), str):
                info[key] = card[key]
    if commit.card_error and (team or not commit.card_error.startswith(POLICY_ERROR_PREFIX)):
        info["cardError"] = commit.card_error
    if config is not None:
        info["config"] = config
    if used_storage is not None:
        info["usedStorage"] = used_storage
    return info
