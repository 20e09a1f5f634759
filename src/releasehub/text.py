"""Checks that text from a request is real Unicode text, which can be stored and sent back.

JSON lets a client send a lone surrogate as an escape (`"\\ud800"`); Python's `json` decodes it
into a `str` that no UTF-8 codec can encode, so the first database write, hash or response that
touches it fails. Every such value is refused where it enters, with a 400 that names the field.
(Values validated by a pydantic model as `str` are refused by pydantic already; these checks are
for what arrives untyped: the NDJSON commit payload, access-form answers, policy documents.)
"""

from __future__ import annotations

from releasehub.errors import BadRequest

SURROGATE_HINT = "which is not valid Unicode text (a lone surrogate escape such as \\ud800); send UTF-8 text"


def require_text(value: str, field: str, error: type[BadRequest] = BadRequest) -> str:
    """Return `value` if it encodes as UTF-8, else raise `error` naming `field`."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(value[exc.start])
        named = field[:1].upper() + field[1:]
        raise error(f"{named} holds U+{code:04X} at character {exc.start}, {SURROGATE_HINT}.") from None
    return value


def require_json_text(value: object, field: str, error: type[BadRequest] = BadRequest) -> None:
    """Check every string in a decoded JSON value (keys included); the message names where it was.

    `field` names the value itself; a nested one is named like `fields['Name'][0]`.
    """
    if isinstance(value, str):
        require_text(value, field, error)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                require_text(key, f"the key {key!r} in {field}", error)
            require_json_text(item, f"{field}[{key!r}]", error)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            require_json_text(item, f"{field}[{index}]", error)
