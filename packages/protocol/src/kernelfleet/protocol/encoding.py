"""Strict base64 and JSON-line helpers, so every parser in the protocol rejects the same malformed input."""

from __future__ import annotations

import base64
import binascii
import json
import re

TYPE_CHECKING = False  # typing itself stays unloaded: these modules run in the launcher's small supervisor
if TYPE_CHECKING:
    from typing import Any

# Deepest JSON nesting any protocol message may have. Protocol messages are flat objects; the limit only
# stops a line of brackets from driving the parser into RecursionError (which no caller expects).
MAX_JSON_DEPTH = 16
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACKET_KIND = bytes.maketrans(b"[{]}", b"(())")  # opening and closing brackets, whatever their shape


class DecodeError(ValueError):
    """A field is not the base64 or JSON the protocol requires."""


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: Any, field: str, *, length: int | None = None) -> bytes:
    if not isinstance(text, str):
        raise DecodeError(f"field {field!r} must be a base64 string")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as err:
        raise DecodeError(f"field {field!r} is not valid base64") from err
    if length is not None and len(data) != length:
        raise DecodeError(f"field {field!r} must decode to {length} bytes, not {len(data)}")
    return data


def dumps_line(obj: dict[str, Any]) -> bytes:
    """One compact JSON object and a newline: the framing of every protocol message."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


def json_nesting_exceeds(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``data`` nests arrays/objects deeper than ``limit`` or its brackets do not pair up (then it
    is no JSON anyway); brackets inside strings do not count.

    Called by ``loads_object`` before ``json.loads``, whose C scanner recurses once per level. Every step is
    a C-speed pass over the line: two ``count`` calls clear any protocol message, and each further pass
    removes one innermost level of bracket pairs, so a hostile line costs at most ``limit`` passes.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", data).translate(_BRACKET_KIND, _NOT_BRACKET)
    for _ in range(limit):
        inner_removed = brackets.replace(b"()", b"")
        if len(inner_removed) == len(brackets):
            break
        brackets = inner_removed
    return bool(brackets)


def loads_object(line: bytes | str, what: str) -> dict[str, Any]:
    """Parse one JSON object; DecodeError (never RecursionError) for anything else, however it is nested."""
    raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    if json_nesting_exceeds(raw):
        raise DecodeError(f"{what} is not JSON nested at most {MAX_JSON_DEPTH} levels deep")
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as err:
        raise DecodeError(f"{what} is not JSON") from err
    except RecursionError:  # deep nesting ("[[[[..."): json's own depth guard, reached before any check of ours
        raise DecodeError(f"{what} is nested too deeply") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"{what} must be a JSON object")
    return obj
