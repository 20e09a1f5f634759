"""Repository logic: create, resolve revisions, read trees, commit, branch and tag.

Commits are atomic: blobs are stored and verified first (they are harmless while no commit
names them), then the commit row, its file list and the branch move are written in one
database transaction. The branch moves by compare-and-swap, so two writers racing on the same
branch cannot both win.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from releasehub.db import as_utc, utcnow
from releasehub.errors import (
    BadRequest,
    EntryNotFound,
    InvalidCommit,
    PreconditionFailed,
    RefExists,
    RepoExists,
    RepoNotFound,
    RevisionNotFound,
)
from releasehub.names import validate_name
from releasehub.repos.cards import CARD_FILENAME, parse_card_bytes
from releasehub.access.models import AccessRequest
from releasehub.repos.models import Blob, Commit, CommitFile, Ref, Repo, UploadClaim
from releasehub.repos.paths import git_blob_oid, lfs_git_oid, validate_path
from releasehub.storage import BlobStore
from releasehub.xet.models import XetFile

DEFAULT_BRANCH = "main"
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
_REF_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")

# The Hub's default .gitattributes: these patterns go through LFS.
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gguf", "*.gz", "*.h5", "*.joblib",
        "*.lfs.*", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot",
        "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors",
        "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip",
        "*.zst", "*tfevents*",
    )
)
LFS_SUFFIXES = tuple(
    line.split(" ", 1)[0].removeprefix("*") for line in DEFAULT_GITATTRIBUTES.splitlines() if line.startswith("*.")
)


# ---------------------------------------------------------------- operations


@dataclass(frozen=True)
class AddRegular:
    path: str
    content: bytes


@dataclass(frozen=True)
class AddStored:
    """An inline (regular) file whose bytes the commit route already wrote to the blob store
    while it parsed the payload (`store_inline`), so that a large commit is never held in memory.
    The committer sent these bytes, so no upload claim is needed."""

    path: str
    sha256: str
    size: int
    git_oid: str


@dataclass(frozen=True)
class AddLfs:
    path: str
    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class DeleteFile:
    path: str


@dataclass(frozen=True)
class DeleteFolder:
    path: str


Operation = AddRegular | AddStored | AddLfs | DeleteFile | DeleteFolder


@dataclass
class FileState:
    sha256: str
    size: int
    git_oid: str
    lfs: bool


@dataclass(frozen=True)
class TreeEntry:
    type: str  # "file" | "directory"
    path: str
    oid: str
    size: int = 0
    sha256: str | None = None
    lfs: bool = False


@dataclass
class RefListing:
    branches: list[tuple[str, str]] = field(default_factory=list)
    tags: list[tuple[str, str]] = field(default_factory=list)


# ---------------------------------------------------------------- helpers


def insert_blob_rows(session: Session, rows: Iterable[tuple[str, int]]) -> None:
    """Record verified blobs, as stored now; a blob recorded twice (a concurrent upload) is not an
    error. Called *before* the bytes are published (or checked to be there): the collector
    deletes a blob only while it holds this row and sees it old, so a blob recorded here is not
    deleted under the caller (see releasehub.collector)."""
    now = utcnow()
    values = [{"sha256": sha, "size": size, "created_at": now, "stored_at": now} for sha, size in rows]
    if not values:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(Blob).values(values)
    session.execute(statement.on_conflict_do_update(index_elements=["sha256"],
                                                    set_={"stored_at": statement.excluded.stored_at}))


def touch_blob(session: Session, sha256: str) -> int | None:
    """The size of a recorded blob, marking it as named by a commit in progress (which keeps the
    collector off it); None when no such blob is recorded."""
    return session.scalar(update(Blob).where(Blob.sha256 == sha256).values(stored_at=utcnow())
                          .returning(Blob.size))


def blob_size(session: Session, sha256: str) -> int | None:
    return session.scalar(select(Blob.size).where(Blob.sha256 == sha256))


def record_claims(session: Session, repo_pk: int, user_pk: int, shas: Iterable[str]) -> None:
    """`user_pk` sent bytes that hashed to each of `shas` in an upload bound to this repo."""
    values = [{"repo_id": repo_pk, "user_id": user_pk, "sha256": sha, "created_at": utcnow()} for sha in set(shas)]
    if not values:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(UploadClaim).values(values).on_conflict_do_nothing(
        index_elements=["repo_id", "user_id", "sha256"]))


def has_claim(session: Session, repo_pk: int, user_pk: int | None, sha256: str) -> bool:
    if user_pk is None:
        return False
    return session.scalar(select(UploadClaim.sha256).where(
        UploadClaim.repo_id == repo_pk, UploadClaim.user_id == user_pk, UploadClaim.sha256 == sha256)) is not None


def paths_with_oid(session: Session, repo_pk: int, sha256: str, limit: int = 100) -> list[str]:
    """Paths that a file with this content has had in any commit of this repo."""
    rows = session.scalars(
        select(CommitFile.path).join(Commit, Commit.id == CommitFile.commit_id)
        .where(Commit.repo_id == repo_pk, CommitFile.sha256 == sha256).distinct().limit(limit)
    )
    return list(rows)


def is_lfs_path(path: str, size: int, sample: bytes) -> bool:
    """Whether a file should travel through LFS (the preupload endpoint's answer)."""
    name = path.rsplit("/", 1)[-1]
    if size >= 10 * 1024 * 1024:
        return True
    if any(name.endswith(suffix) for suffix in LFS_SUFFIXES) or "tfevents" in name:
        return True
    return b"\x00" in sample


def _commit_oid(parent: str | None, files: dict[str, FileState], title: str, message: str, author: str,
                when: datetime) -> str:
    tree = hashlib.sha1()
    for path in sorted(files):
        tree.update(f"{path}\x00{files[path].git_oid}\n".encode())
    payload = json.dumps([parent, tree.hexdigest(), title, message, author, when.isoformat()])
    return hashlib.sha1(payload.encode()).hexdigest()


# ---------------------------------------------------------------- repos


# Statements of the download path, built once (building one costs more than running it).
_REPO_BY_NAME = select(Repo).where(
    Repo.repo_type == bindparam("repo_type"), Repo.namespace == bindparam("namespace"), Repo.name == bindparam("name")
)
# On the Hub `Org/Repo` and `org/repo` name one repo. The exact (indexed) match serves nearly every
# request; only a miss tries again ignoring case, so the download path keeps its one indexed read.
_REPO_BY_NAME_ANY_CASE = select(Repo).where(
    Repo.repo_type == bindparam("repo_type"), func.lower(Repo.namespace) == func.lower(bindparam("namespace")),
    func.lower(Repo.name) == func.lower(bindparam("name"))
)
_COMMIT_BY_REF = (
    select(Commit)
    .join(Ref, Ref.commit_id == Commit.id)
    .where(Ref.repo_id == bindparam("repo_id"), Ref.kind == bindparam("kind"), Ref.name == bindparam("name"))
)
_FILE_AT_COMMIT = select(CommitFile.sha256, CommitFile.size, CommitFile.git_oid, CommitFile.lfs).where(
    CommitFile.commit_id == bindparam("commit_id"), CommitFile.path == bindparam("path")
)


# The common download (a file on a branch) in one query: repo, branch head and file entry.
_FILE_ON_BRANCH = (
    select(Repo.id, Repo.visibility, Repo.gated, Repo.policy_version, Commit.oid, CommitFile.sha256,
           CommitFile.size, CommitFile.git_oid, CommitFile.lfs, AccessRequest.status, AccessRequest.tier,
           AccessRequest.expires_at, AccessRequest.reason, XetFile.file_hash)
    .select_from(Repo)
    .outerjoin(Ref, (Ref.repo_id == Repo.id) & (Ref.kind == "branch") & (Ref.name == bindparam("revision")))
    .outerjoin(Commit, Commit.id == Ref.commit_id)
    .outerjoin(CommitFile, (CommitFile.commit_id == Commit.id) & (CommitFile.path == bindparam("path")))
    .outerjoin(AccessRequest, (AccessRequest.repo_id == Repo.id) & (AccessRequest.user_id == bindparam("user_id")))
    # Uploaded through Xet to this repo (indexed by sha256): the answer may advertise Xet, once decided.
    .outerjoin(XetFile, CommitFile.lfs & (XetFile.sha256 == CommitFile.sha256) & (XetFile.repo_id == Repo.id))
    .where(Repo.repo_type == "model", Repo.namespace == bindparam("namespace"), Repo.name == bindparam("name"))
)


@dataclass(frozen=True)
class BranchFile:
    """What `locate_on_branch` found: the repo always; the commit and file when they exist."""

    repo_id: int
    visibility: str
    gated: str | None
    policy_version: int
    commit_oid: str | None
    file: FileState | None
    # The subject's access request on this repo: (status, tier, expires_at, reason), or None.
    grant: tuple[str, str | None, datetime | None, str | None] | None
    # The Xet file hash when this content was uploaded through Xet to this repo.
    xet_hash: str | None = None

    @property
    def private(self) -> bool:
        return self.visibility != "public"


def locate_on_branch(executor: Session | Connection, namespace: str, name: str, revision: str,
                     path: str, user_id: int | None = None) -> BranchFile | None:
    """None when the repo does not exist. Callers decide access before using the rest."""
    row = executor.execute(
        _FILE_ON_BRANCH,
        {"namespace": namespace, "name": name, "revision": revision, "path": path, "user_id": user_id or -1},
    ).first()
    if row is None:
        return None
    (repo_id, visibility, gated, version, oid, sha, size, git_oid, lfs, g_status, g_tier, g_expires, g_reason,
     xet_hash) = row
    state = FileState(sha, size, git_oid, lfs) if sha is not None else None
    grant = (g_status, g_tier, as_utc(g_expires), g_reason) if g_status is not None else None
    return BranchFile(repo_id, visibility, gated, version or 0, oid, state, grant, xet_hash)


def policy_json(executor: Session | Connection, repo_pk: int) -> dict[str, Any] | None:
    return executor.execute(select(Repo.policy).where(Repo.id == repo_pk)).scalar()  # type: ignore[no-any-return]


def get_repo(session: Session, namespace: str, name: str, repo_type: str = "model") -> Repo:
    repo = find_repo(session, namespace, name, repo_type)
    if repo is None:
        raise RepoNotFound(f"Repository {namespace}/{name} not found.")
    return repo


def find_repo(session: Session, namespace: str, name: str, repo_type: str = "model") -> Repo | None:
    """The repo named `namespace/name`, in any letter case (the row keeps the casing it was created with)."""
    params = {"repo_type": repo_type, "namespace": namespace, "name": name}
    return session.scalar(_REPO_BY_NAME, params) or session.scalar(_REPO_BY_NAME_ANY_CASE, params)


def create_repo(
    session: Session,
    store: BlobStore,
    namespace: str,
    name: str,
    *,
    author: str,
    private: bool = False,
    visibility: str | None = None,
    repo_type: str = "model",
) -> Repo:
    validate_name(name, "repository name")
    if find_repo(session, namespace, name, repo_type) is not None:
        raise RepoExists(f"You already created this {repo_type} repo: {namespace}/{name}.")
    now = utcnow()
    repo = Repo(repo_type=repo_type, namespace=namespace, name=name, created_at=now, updated_at=now)
    repo.set_visibility(visibility or ("private" if private else "public"))
    session.add(repo)
    session.flush()
    # Like the Hub, a new repo starts with one commit holding the default .gitattributes, so
    # that `main` always resolves to a commit.
    content = DEFAULT_GITATTRIBUTES.encode()
    sha = hashlib.sha256(content).hexdigest()
    insert_blob_rows(session, [(sha, len(content))])  # the row first: see insert_blob_rows
    store.put_bytes(content, sha)
    files = {".gitattributes": FileState(sha, len(content), git_blob_oid(content), False)}
    commit = _insert_commit(session, repo, None, files, "initial commit", "", author, now, None, None)
    session.add(Ref(repo_id=repo.id, kind="branch", name=DEFAULT_BRANCH, commit_id=commit.id, created_at=now))
    session.flush()
    return repo


def delete_repo(session: Session, repo: Repo) -> None:
    session.execute(delete(Ref).where(Ref.repo_id == repo.id))
    session.execute(delete(UploadClaim).where(UploadClaim.repo_id == repo.id))
    commit_ids = select(Commit.id).where(Commit.repo_id == repo.id)
    session.execute(delete(CommitFile).where(CommitFile.commit_id.in_(commit_ids)))
    session.execute(delete(Commit).where(Commit.repo_id == repo.id))
    session.delete(repo)


def list_repos(session: Session, *, author: str | None = None, search: str | None = None,
               repo_type: str = "model") -> list[Repo]:
    query = select(Repo).where(Repo.repo_type == repo_type)
    if author:
        query = query.where(Repo.namespace == author)
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(func.lower(Repo.namespace + "/" + Repo.name).like(pattern))
    return list(session.scalars(query.order_by(Repo.updated_at.desc(), Repo.id.desc())))


# ---------------------------------------------------------------- revisions


def resolve_revision(session: Session, repo: Repo, revision: str) -> Commit:
    """A branch, a tag (also as refs/heads/X, refs/tags/X) or a full commit sha."""
    candidates: list[tuple[str, str]] = []
    if revision.startswith("refs/heads/"):
        candidates = [("branch", revision.removeprefix("refs/heads/"))]
    elif revision.startswith("refs/tags/"):
        candidates = [("tag", revision.removeprefix("refs/tags/"))]
    else:
        candidates = [("branch", revision), ("tag", revision)]
    for kind, name in candidates:
        commit = session.scalar(_COMMIT_BY_REF, {"repo_id": repo.id, "kind": kind, "name": name})
        if commit is not None:
            return commit
    if _COMMIT_SHA.match(revision):
        commit = session.scalar(select(Commit).where(Commit.repo_id == repo.id, Commit.oid == revision))
        if commit is not None:
            return commit
    raise RevisionNotFound(
        f"Revision {revision!r} not found in {repo.repo_id}: use a branch, a tag or a full 40-character "
        "commit sha (list them with `list_repo_refs`)."
    )


def find_commit(session: Session, repo: Repo, oid: str) -> Commit | None:
    return session.scalar(select(Commit).where(Commit.repo_id == repo.id, Commit.oid == oid))


def commit_files(session: Session, commit: Commit) -> dict[str, FileState]:
    rows = session.execute(
        select(CommitFile.path, CommitFile.sha256, CommitFile.size, CommitFile.git_oid, CommitFile.lfs).where(
            CommitFile.commit_id == commit.id
        )
    )
    return {path: FileState(sha, size, oid, lfs) for path, sha, size, oid, lfs in rows}


def missing_file(path: str, commit_oid: str) -> EntryNotFound:
    """The one error for a file that does not exist (or is hidden) at a revision."""
    return EntryNotFound(f"{path} does not exist at revision {commit_oid[:12]} of this repository.")


def find_file(session: Session, commit: Commit, path: str) -> FileState | None:
    row = session.execute(_FILE_AT_COMMIT, {"commit_id": commit.id, "path": path}).first()
    return FileState(*row) if row is not None else None


def get_file(session: Session, commit: Commit, path: str) -> FileState:
    state = find_file(session, commit, path)
    if state is None:
        raise missing_file(path, commit.oid)
    return state


def tree_entries(files: dict[str, FileState], path: str = "", recursive: bool = False) -> list[TreeEntry]:
    """Files and directories below `path` (directories derived from file paths)."""
    prefix = f"{path.strip('/')}/" if path.strip("/") else ""
    if prefix and prefix.rstrip("/") in files:
        raise EntryNotFound(f"{path} is a file, not a directory.")
    dirs: dict[str, hashlib._Hash] = {}
    entries: list[TreeEntry] = []
    for file_path in sorted(files):
        if not file_path.startswith(prefix):
            continue
        state = files[file_path]
        rest = file_path[len(prefix):]
        parts = rest.split("/")
        # Every ancestor directory below `path`, down to this file (or only the first level).
        depth = len(parts) - 1 if recursive else min(1, len(parts) - 1)
        for i in range(1, depth + 1):
            directory = prefix + "/".join(parts[:i])
            dirs.setdefault(directory, hashlib.sha1()).update(f"{file_path}\x00{state.git_oid}".encode())
        if recursive or len(parts) == 1:
            entries.append(TreeEntry("file", file_path, state.git_oid, state.size, state.sha256, state.lfs))
    if prefix and not entries and not dirs:
        raise EntryNotFound(f"{path} does not exist at this revision.")
    entries.extend(TreeEntry("directory", d, h.hexdigest()) for d, h in dirs.items())
    entries.sort(key=lambda e: e.path)
    return entries


def path_info(files: dict[str, FileState], path: str) -> TreeEntry | None:
    state = files.get(path)
    if state is not None:
        return TreeEntry("file", path, state.git_oid, state.size, state.sha256, state.lfs)
    prefix = path.rstrip("/") + "/"
    digest = hashlib.sha1()
    found = False
    for file_path in sorted(files):
        if file_path.startswith(prefix):
            found = True
            digest.update(f"{file_path}\x00{files[file_path].git_oid}".encode())
    return TreeEntry("directory", path.rstrip("/"), digest.hexdigest()) if found else None


def repo_paths(session: Session, repo: Repo) -> set[str]:
    """Every path that any commit of the repo has held."""
    return set(session.scalars(
        select(CommitFile.path).join(Commit, Commit.id == CommitFile.commit_id)
        .where(Commit.repo_id == repo.id).distinct()
    ))


def hidden_names(all_paths: Iterable[str], visible: Callable[[str], bool]) -> set[str]:
    """Names a text must not hold for a subject who sees only `visible` paths: each hidden path,
    its file name, and the folders that hold nothing the subject may see. Lower case."""
    paths = set(all_paths)
    shown = {p for p in paths if visible(p)}
    open_dirs = {"/".join(p.split("/")[:i]) for p in shown for i in range(1, p.count("/") + 1)}
    names: set[str] = set()
    for path in paths - shown:
        parts = path.split("/")
        names.add(path.lower())
        names.add(parts[-1].lower())
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder not in open_dirs:
                names.add(folder.lower())
                names.add(parts[i - 1].lower())
    return names


def names_any(text: str, names: set[str]) -> bool:
    lowered = text.lower()
    return any(name in lowered for name in names)


def last_commits(session: Session, repo: Repo, head: Commit, paths: Iterable[str],
                 limit: int = 1000) -> dict[str, Commit]:
    """For each file or folder path, the newest commit (from `head` back) that changed it: a file's
    entry, or any file below a folder, differs from the commit's parent."""
    wanted = {p.strip("/") for p in paths}
    found: dict[str, Commit] = {}
    history = list_commits(session, repo, head, limit)
    newer = commit_files(session, history[0]) if history else {}
    for index, commit in enumerate(history):
        older = commit_files(session, history[index + 1]) if index + 1 < len(history) else {}
        changed = {p for p in set(newer) | set(older) if newer.get(p) != older.get(p)}
        for path in list(wanted):
            prefix = path + "/"
            if path in changed or any(c.startswith(prefix) for c in changed):
                found[path] = commit
                wanted.discard(path)
        if not wanted:
            break
        newer = older
    return found


def list_commits(session: Session, repo: Repo, head: Commit, limit: int = 1000) -> list[Commit]:
    by_oid = {c.oid: c for c in session.scalars(select(Commit).where(Commit.repo_id == repo.id))}
    history: list[Commit] = []
    current: Commit | None = head
    while current is not None and len(history) < limit:
        history.append(current)
        current = by_oid.get(current.parent_oid) if current.parent_oid else None
    return history


# ---------------------------------------------------------------- commits


def _insert_commit(
    session: Session,
    repo: Repo,
    parent: Commit | None,
    files: dict[str, FileState],
    title: str,
    message: str,
    author: str,
    now: datetime,
    card_data: dict[str, Any] | None,
    card_error: str | None,
) -> Commit:
    parent_oid = parent.oid if parent is not None else None
    commit = Commit(
        repo_id=repo.id,
        oid=_commit_oid(parent_oid, files, title, message, author, now),
        parent_oid=parent_oid,
        title=title,
        message=message,
        author=author,
        created_at=now,
        card_data=card_data,
        card_error=card_error,
    )
    session.add(commit)
    session.flush()
    if files:
        session.execute(
            CommitFile.__table__.insert(),
            [
                {"commit_id": commit.id, "path": p, "sha256": s.sha256, "size": s.size, "git_oid": s.git_oid,
                 "lfs": s.lfs}
                for p, s in files.items()
            ],
        )
    return commit


def _branch_ref(session: Session, repo: Repo, branch: str) -> Ref:
    ref = session.scalar(select(Ref).where(Ref.repo_id == repo.id, Ref.kind == "branch", Ref.name == branch))
    if ref is None:
        is_tag = session.scalar(
            select(Ref.id).where(Ref.repo_id == repo.id, Ref.kind == "tag", Ref.name == branch)
        )
        if is_tag is not None or _COMMIT_SHA.match(branch):
            raise BadRequest(f"Cannot commit to {branch!r}: commits go to a branch, not a tag or a commit sha.")
        raise RevisionNotFound(
            f"Branch {branch!r} not found in {repo.repo_id}. Create it first with `create_branch`."
        )
    return ref


def _check_inline_size(path: str, size: int, max_regular_bytes: int) -> None:
    if size > max_regular_bytes:
        raise InvalidCommit(
            f"{path} is {size} bytes, over the inline limit of {max_regular_bytes}; "
            "upload it through LFS (the client does so when preupload says 'lfs')."
        )


def store_inline(store: BlobStore, path: str, content: bytes, max_regular_bytes: int) -> AddStored:
    """Write one inline file of a commit to the blob store now (harmless until a commit names it)."""
    _check_inline_size(path, len(content), max_regular_bytes)
    return AddStored(path, store.put_bytes(content), len(content), git_blob_oid(content))


def store_regular_files(session: Session, store: BlobStore, operations: list[Operation],
                        max_regular_bytes: int) -> None:
    """Write the inline contents of a commit to the blob store before the commit transaction,
    and record the blob rows of those already stored (in this transaction, so on every retry)."""
    rows = []
    for op in operations:
        if isinstance(op, AddRegular):
            _check_inline_size(op.path, len(op.content), max_regular_bytes)
            rows.append((store.put_bytes(op.content), len(op.content), op.path))
        elif isinstance(op, AddStored):
            _check_inline_size(op.path, op.size, max_regular_bytes)
            rows.append((op.sha256, op.size, op.path))
    # The rows first, then the check that the bytes are there: a blob the collector removed in
    # between is not silently named (the collector holds the row while it deletes the bytes).
    insert_blob_rows(session, [(sha, size) for sha, size, _ in rows])
    for sha, _, path in rows:
        if not store.exists(sha):
            raise InvalidCommit(f"{path}: its inline content is no longer stored; send the commit again.")


# "May the committer name this oid in this repo?" (see `publishing.may_name_oid`).
OidCheck = Callable[[str], bool]


def never_uploaded(sha256: str, path: str) -> InvalidCommit:
    """The one answer for an oid a commit may not name: never sent to this repo, missing, or
    stored for another repo only (which the answer must not tell apart)."""
    return InvalidCommit(
        f"LFS object {sha256} for {path} was never uploaded to this repository (or failed verification); "
        "upload it through the LFS batch API (or POST /api/models/{repo}/blobs) before committing."
    )


def apply_operations(
    session: Session, store: BlobStore, base: dict[str, FileState], operations: list[Operation],
    may_name: OidCheck,
) -> dict[str, FileState]:
    files = dict(base)
    for op in operations:
        raw = op.path.strip("/") if isinstance(op, DeleteFolder) else op.path
        # A path stored before a rule was tightened (`.GIT/x`) can still be deleted, never added.
        deleting_stored = isinstance(op, (DeleteFile, DeleteFolder)) and (
            raw in files or any(p.startswith(raw + "/") for p in files))
        path = raw if deleting_stored else validate_path(raw)
        if isinstance(op, AddRegular):
            sha = hashlib.sha256(op.content).hexdigest()
            files[path] = FileState(sha, len(op.content), git_blob_oid(op.content), False)
        elif isinstance(op, AddStored):
            files[path] = FileState(op.sha256, op.size, op.git_oid, False)
        elif isinstance(op, AddLfs):
            # The claim first: whether the blob exists (and its size) is told only to those who may name it.
            if not may_name(op.sha256):
                raise never_uploaded(op.sha256, path)
            size = touch_blob(session, op.sha256)
            if size is None or not store.exists(op.sha256):
                raise never_uploaded(op.sha256, path)
            if op.size is not None and op.size != size:
                raise InvalidCommit(f"{path}: declared size {op.size} but the stored object has {size} bytes.")
            files[path] = FileState(op.sha256, size, lfs_git_oid(op.sha256, size), True)
        elif isinstance(op, DeleteFile):
            if files.pop(path, None) is None:
                # The client sends a folder named without its trailing '/' as a file (as the Hub
                # accepts it): delete the folder then.
                doomed = [p for p in files if p.startswith(path + "/")]
                if not doomed:
                    raise EntryNotFound(f"Cannot delete {path}: no such file or folder at the parent revision.")
                for p in doomed:
                    del files[p]
        elif isinstance(op, DeleteFolder):
            prefix = path + "/"
            doomed = [p for p in files if p.startswith(prefix)]
            if not doomed:
                raise EntryNotFound(f"Cannot delete folder {path}: no files under it at the parent revision.")
            for p in doomed:
                del files[p]
    for path in files:
        # A file may not also be a directory (e.g. 'a' and 'a/b').
        parent = path.rsplit("/", 1)[0] if "/" in path else None
        while parent:
            if parent in files:
                raise InvalidCommit(f"{parent} cannot be both a file and the folder of {path}.")
            parent = parent.rsplit("/", 1)[0] if "/" in parent else None
    return files


def create_commit(
    session: Session,
    store: BlobStore,
    repo: Repo,
    *,
    branch: str,
    operations: list[Operation],
    title: str,
    message: str = "",
    author: str,
    may_name: OidCheck,
    parent_commit: str | None = None,
    max_regular_bytes: int = 10 * 1024 * 1024,
) -> Commit:
    """Writes one commit and moves the branch (compare-and-swap). `may_name` judges every oid an
    `AddLfs` names; the caller is `publishing.commit`, which builds it for the committer."""
    if not title.strip():
        raise InvalidCommit("A commit needs a summary (commit message).")
    if len(title.strip()) > 1000:
        raise InvalidCommit("The commit summary is longer than 1000 characters; move the rest to the description.")
    ref = _branch_ref(session, repo, branch)
    head = session.get(Commit, ref.commit_id)
    assert head is not None
    if parent_commit is not None and parent_commit != head.oid:
        # The Hub's sentence first: clients match on it.
        raise PreconditionFailed(
            "The branch was updated since you opened this page. Please refresh and try again. "
            f"(Branch {branch!r} is at {head.oid}, not at the parent commit {parent_commit} you named: "
            "someone committed in between. Fetch the new head and retry.)"
        )
    store_regular_files(session, store, operations, max_regular_bytes)
    files = apply_operations(session, store, commit_files(session, head), operations, may_name)

    card_data, card_error = None, None
    card = files.get(CARD_FILENAME)
    if card is not None:
        card_data, card_error = parse_card_bytes(store.read_bytes(card.sha256))

    now = utcnow()
    commit = _insert_commit(session, repo, head, files, title.strip(), message, author, now, card_data,
                            card_error)
    moved = session.execute(
        update(Ref).where(Ref.id == ref.id, Ref.commit_id == head.id).values(commit_id=commit.id)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise PreconditionFailed(f"Branch {branch!r} moved while this commit was written; retry the commit.")
    repo.updated_at = now
    session.flush()
    return commit


# ---------------------------------------------------------------- refs


def list_refs(session: Session, repo: Repo) -> RefListing:
    listing = RefListing()
    rows = session.execute(
        select(Ref.kind, Ref.name, Commit.oid).join(Commit, Commit.id == Ref.commit_id).where(
            Ref.repo_id == repo.id
        ).order_by(Ref.name)
    )
    for kind, name, oid in rows:
        (listing.branches if kind == "branch" else listing.tags).append((name, oid))
    return listing


def _validate_ref_name(name: str, what: str) -> str:
    if not _REF_NAME.match(name) or ".." in name or name.endswith((".lock", "/")) or "//" in name:
        raise BadRequest(
            f"Invalid {what} name {name!r}: use letters, digits, '.', '_', '-' and '/', without '..'."
        )
    if _COMMIT_SHA.match(name):
        raise BadRequest(f"A {what} name cannot look like a commit sha: {name!r}.")
    return name


def create_branch(session: Session, repo: Repo, branch: str, starting_point: str | None = None,
                  exist_ok: bool = False) -> Ref:
    _validate_ref_name(branch, "branch")
    existing = session.scalar(select(Ref).where(Ref.repo_id == repo.id, Ref.kind == "branch", Ref.name == branch))
    if existing is not None:
        if exist_ok:
            return existing
        raise RefExists(f"Reference refs/heads/{branch} already exists in {repo.repo_id}.")  # the Hub's words
    commit = resolve_revision(session, repo, starting_point or DEFAULT_BRANCH)
    ref = Ref(repo_id=repo.id, kind="branch", name=branch, commit_id=commit.id)
    session.add(ref)
    session.flush()
    return ref


def delete_branch(session: Session, repo: Repo, branch: str) -> None:
    if branch == DEFAULT_BRANCH:
        raise BadRequest(f"The default branch {DEFAULT_BRANCH!r} cannot be deleted.")
    deleted = session.execute(
        delete(Ref).where(Ref.repo_id == repo.id, Ref.kind == "branch", Ref.name == branch)
    )
    if deleted.rowcount == 0:  # type: ignore[attr-defined]
        raise RevisionNotFound(f"Invalid rev id: {branch} (no branch of that name in {repo.repo_id}).")


def create_tag(session: Session, repo: Repo, tag: str, revision: str, message: str | None = None,
               exist_ok: bool = False) -> Ref:
    commit = resolve_revision(session, repo, revision)  # a missing revision is named first, as on the Hub
    _validate_ref_name(tag, "tag")
    existing = session.scalar(select(Ref).where(Ref.repo_id == repo.id, Ref.kind == "tag", Ref.name == tag))
    if existing is not None:
        if exist_ok:
            return existing
        raise RefExists(f"Reference refs/tags/{tag} already exists in {repo.repo_id}; tags are immutable, "
                        "delete it first.")
    ref = Ref(repo_id=repo.id, kind="tag", name=tag, commit_id=commit.id, message=message)
    session.add(ref)
    session.flush()
    return ref


def delete_tag(session: Session, repo: Repo, tag: str) -> None:
    deleted = session.execute(delete(Ref).where(Ref.repo_id == repo.id, Ref.kind == "tag", Ref.name == tag))
    if deleted.rowcount == 0:  # type: ignore[attr-defined]
        raise RevisionNotFound(f"Tag {tag!r} not found in {repo.repo_id}.")


def used_storage(session: Session, repo: Repo) -> int:
    """Bytes of the distinct blobs that any commit of the repo names."""
    distinct = (
        select(CommitFile.sha256, CommitFile.size)
        .join(Commit, Commit.id == CommitFile.commit_id)
        .where(Commit.repo_id == repo.id)
        .distinct()
        .subquery()
    )
    return int(session.scalar(select(func.coalesce(func.sum(distinct.c.size), 0))) or 0)
