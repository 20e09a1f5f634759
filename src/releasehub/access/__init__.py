"""Release policies and the one access decision (`decide`)."""

from releasehub.access.decide import (
    Decision,
    Grant,
    Permission,
    RepoPolicy,
    decide,
    decide_namespace,
    file_visible,
)

__all__ = ["Decision", "Grant", "Permission", "RepoPolicy", "decide", "decide_namespace", "file_visible"]
