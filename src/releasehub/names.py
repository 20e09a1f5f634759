"""Validation of user, organisation and repository names (the Hub's rules)."""

from __future__ import annotations

import re

from releasehub.errors import InvalidName

_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
RESERVED = frozenset({"api", "models", "datasets", "spaces", "settings", "login", "logout", "new", "docs"})


def validate_name(name: str, what: str = "name") -> str:
    if not _NAME.match(name) or "--" in name or ".." in name or name.endswith(".git"):
        raise InvalidName(
            f"Invalid {what} {name!r}: use 1-96 letters, digits, '-', '_' or '.', starting and ending "
            "with a letter or digit, without '--' or '..', and not ending in '.git'."
        )
    if name.lower() in RESERVED:
        raise InvalidName(f"{what.capitalize()} {name!r} is reserved; choose another name.")
    return name
