"""Values as they appear in error messages: quoted, on one line, and short.

Every message that echoes what a user wrote goes through `quoted`, so a 30 MB value or a value
with a newline never floods or breaks the one-line format, and non-ASCII text reads as written.
"""

from __future__ import annotations

import math
from typing import Any

# Longest value shown whole; a longer one is cut and followed by its length.
MAX_SHOWN = 80
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(text: str) -> str:
    return "".join(
        _ESCAPES.get(ch) or (ch if ch.isprintable() else f"\\u{ord(ch):04x}") for ch in text
    )


def quoted(value: Any) -> str:
    """A value for a message: a string in double quotes (escaped, cut beyond `MAX_SHOWN`
    characters with its length), a number, boolean or null as JSON writes it."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        # Python refuses to print integers of thousands of digits; nobody needs to read them.
        return (
            str(value)
            if value.bit_length() <= 256
            else f"(an integer of {value.bit_length()} bits)"
        )
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= MAX_SHOWN:
        return f'"{_escaped(text)}"'
    return f'"{_escaped(text[: MAX_SHOWN - 1])}…" ({len(text)} characters)'


def described(value: Any) -> str:
    """What a value is, for "expected X, got ...": `the string "3"`, `the number 0.5`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {quoted(value)}"
    if isinstance(value, int | float):
        return f"the number {quoted(value)}"
    if isinstance(value, str):
        return f"the string {quoted(value)}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"
