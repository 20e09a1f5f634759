"""The repo's own `.gitattributes` and `.gitignore`, as the Hub reads them at preupload.

`.gitattributes` lines that set `filter=lfs` send matching paths through LFS (a releaser can add
`*.npz filter=lfs ...` as on the Hub); `.gitignore` tells the client which files to leave out of a
commit (`shouldIgnore`). Patterns follow git's wildmatch rules, through `pathspec`.
"""

from __future__ import annotations

from pathspec import GitIgnoreSpec

MAX_BYTES = 1024 * 1024


def lfs_spec(gitattributes: str) -> GitIgnoreSpec | None:
    """The patterns of `.gitattributes` whose attributes include `filter=lfs`; None when there are none."""
    patterns = []
    for line in gitattributes.splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        pattern, *attributes = text.split()
        if "filter=lfs" in attributes and not pattern.startswith("!"):
            patterns.append(pattern)
    return GitIgnoreSpec.from_lines(patterns) if patterns else None


def ignore_spec(gitignore: str) -> GitIgnoreSpec | None:
    lines = [line for line in gitignore.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return GitIgnoreSpec.from_lines(lines) if lines else None


def matches(spec: GitIgnoreSpec | None, path: str) -> bool:
    return spec is not None and spec.match_file(path)
