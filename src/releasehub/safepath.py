"""Keep the working directory off `sys.path`, so that a stray module there is never imported.

`python -m releasehub` puts the working directory first on `sys.path`, and granian's default
loader inserts it again in every worker; a file such as `h2.py` or `yaml.py` lying in the
directory the server is started from would then shadow the real library and stop the server
(or run code the operator never meant to run). This module imports only the standard library,
so `releasehub/__main__.py` can call it before anything else is imported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _package_root() -> str:
    """The directory that holds the `releasehub` package (kept: the package is imported from it)."""
    return str(Path(__file__).resolve().parent.parent)


def drop_cwd_from_sys_path() -> None:
    """Remove '' and every entry naming the working directory from `sys.path`, in place."""
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:  # the working directory was removed: only '' can point at it
        cwd = None
    keep = _package_root()
    kept = []
    for entry in sys.path:
        if entry in ("", "."):
            continue
        if cwd is not None and cwd != keep and os.path.realpath(entry) == cwd:
            continue
        kept.append(entry)
    sys.path[:] = kept
