"""`Subject`: who is asking. Plain data, the input of every access decision (no database imports)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Subject:
    """Who is asking: the input of every access decision. Plain data, no database handle."""

    user_id: int | None = None
    name: str | None = None
    is_admin: bool = False
    scope: str = "read"
    org_roles: dict[str, str] = field(default_factory=dict)
    token_id: int | None = None

    @property
    def anonymous(self) -> bool:
        return self.user_id is None

    @property
    def can_write(self) -> bool:
        return self.scope == "write"


ANONYMOUS = Subject()
