"""Model cards: README.md with YAML front matter (the Hub's `cardData`)."""

from __future__ import annotations

from typing import Any

import yaml

CARD_FILENAME = "README.md"
MAX_FRONT_MATTER_BYTES = 1024 * 1024


def _json_safe(value: Any) -> Any:
    """YAML can hold dates and other types that JSON cannot; keep them as strings."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def parse_card(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """Return (front matter, error). No front matter is (None, None), not an error."""
    normalized = text.replace("\r\n", "\n")
    if not normalized.startswith("---\n"):
        return None, None
    end = normalized.find("\n---", 3)
    if end == -1:
        return None, "README.md front matter starts with '---' but has no closing '---' line."
    block = normalized[4 : end + 1]
    if len(block.encode()) > MAX_FRONT_MATTER_BYTES:
        return None, f"README.md front matter is larger than {MAX_FRONT_MATTER_BYTES} bytes."
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return None, f"README.md front matter is not valid YAML{where}: {problem}."
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return None, "README.md front matter must be a YAML mapping (key: value lines)."
    return _json_safe(data), None


def parse_card_bytes(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "README.md is not valid UTF-8."
    return parse_card(text)
