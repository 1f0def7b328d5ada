"""Strict base64 and JSON-line helpers, so every parser in the protocol rejects the same malformed input."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


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


def loads_object(line: bytes | str, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as err:
        raise DecodeError(f"{what} is not JSON") from err
    except RecursionError:  # deep nesting ("[[[[..."): json's own depth guard, reached before any check of ours
        raise DecodeError(f"{what} is nested too deeply") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"{what} must be a JSON object")
    return obj
