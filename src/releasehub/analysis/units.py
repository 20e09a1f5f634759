"""How sizes and money are shown to people: a memory figure always says GB or GiB."""

from __future__ import annotations

GB = 10**9
GIB = 1 << 30


def gb(value: int | float | None, digits: int = 1) -> str:
    """Decimal gigabytes, the unit of GPU data sheets and the paper: '810.0 GB'."""
    if value is None:
        return "—"
    if value >= 1000 * GB:
        return f"{value / 1e12:,.{max(digits, 2)}f} TB"
    return f"{value / GB:,.{digits}f} GB"


def gib(value: int | float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value / GIB:,.{digits}f} GiB"


def both(value: int | float | None) -> str:
    """'811.7 GB (756.0 GiB)': both units, so nobody has to guess which one is meant."""
    if value is None:
        return "—"
    return f"{gb(value)} ({gib(value)})"


def usd(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"${value:,.{digits}f}"


def count(value: int | None) -> str:
    if value is None:
        return "—"
    if value >= 10**9:
        return f"{value / 1e9:,.1f}B"
    if value >= 10**6:
        return f"{value / 1e6:,.1f}M"
    return f"{value:,}"
