"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), the two patch formats every resource accepts."""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ApiError(422, f"invalid JSON pointer: {pointer}", "Invalid")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _parent(doc: Any, pointer: str) -> tuple[Any, str]:
    tokens = _tokens(pointer)
    if not tokens:
        raise ApiError(422, "cannot operate on the document root", "Invalid")
    cur = doc
    for tok in tokens[:-1]:
        try:
            cur = cur[int(tok)] if isinstance(cur, list) else cur[tok]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(422, f"doc is missing path: {pointer}", "Invalid") from None
    return cur, tokens[-1]


def _get(doc: Any, pointer: str) -> Any:
    parent, last = _parent(doc, pointer)
    try:
        return parent[int(last)] if isinstance(parent, list) else parent[last]
    except (KeyError, IndexError, ValueError, TypeError):
        raise ApiError(422, f"doc is missing key: {pointer}", "Invalid") from None


def _add(doc: Any, pointer: str, value: Any) -> None:
    parent, last = _parent(doc, pointer)
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            parent.insert(int(last), value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise ApiError(422, f"doc is missing path: {pointer}", "Invalid")


def _remove(doc: Any, pointer: str) -> Any:
    parent, last = _parent(doc, pointer)
    try:
        return parent.pop(int(last)) if isinstance(parent, list) else parent.pop(last)
    except (KeyError, IndexError, ValueError, TypeError):
        raise ApiError(422, f"unable to remove nonexistent key: {last}: missing value", "Invalid") from None


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise ApiError(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch", "BadRequest")
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        if kind == "add":
            _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            parent, last = _parent(doc, path)
            parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(op.get("value"))
        elif kind == "move":
            _add(doc, path, _remove(doc, op.get("from", "")))
        elif kind == "copy":
            _add(doc, path, copy.deepcopy(_get(doc, op.get("from", ""))))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise ApiError(422, f"testing value {path} failed: test failed", "Invalid")
        else:
            raise ApiError(400, f"Unexpected kind: {kind}", "BadRequest")
    return doc
