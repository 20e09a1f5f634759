"""Release policies and the one access decision (`decide`)."""

from releasehub.access.decide import Decision, Permission, RepoPolicy, decide, decide_namespace

__all__ = ["Decision", "Permission", "RepoPolicy", "decide", "decide_namespace"]
