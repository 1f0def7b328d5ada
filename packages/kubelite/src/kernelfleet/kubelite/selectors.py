"""Label and field selectors with the API server's grammar, so list/watch filtering behaves as on a cluster."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import bad_request

_SET_TERM = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_TERM = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside ``(...)``."""
    terms: list[str] = []
    depth = 0
    current = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return [t for t in terms if t.strip()] if text.strip() else []


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text:
        return []
    reqs: list[Requirement] = []
    for term in _split_terms(text):
        eq = _EQ_TERM.match(term)
        if eq:
            key, op, value = eq.groups()
            reqs.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
            continue
        st = _SET_TERM.match(term)
        if st:
            bang, key, op, values = st.groups()
            if op:
                if bang:
                    raise bad_request(f"unable to parse requirement: found '{term.strip()}', "
                                      "expected: valid selector term")
                vals = tuple(v.strip() for v in values.split(",") if v.strip())
                reqs.append(Requirement(key, op, vals))
            else:
                reqs.append(Requirement(key, "!" if bang else "exists"))
            continue
        raise bad_request(f"unable to parse requirement: found '{term.strip()}', expected: valid selector term")
    return reqs


def labels_match(reqs: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


FieldGetter = Callable[[dict[str, Any]], str]


def _path(*keys: str) -> FieldGetter:
    def get(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for k in keys:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(k)
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return "" if cur is None else str(cur)

    return get


def field_getters(*paths: str) -> dict[str, FieldGetter]:
    """Getters for dotted field paths, as the server's per-resource field label conversion allows."""
    return {p: _path(*p.split(".")) for p in paths}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    negate: bool
    value: str


def parse_field_selector(text: str | None, supported: Mapping[str, FieldGetter]) -> list[FieldRequirement]:
    if not text:
        return []
    out: list[FieldRequirement] = []
    for term in _split_terms(text):
        m = re.match(r"^\s*([A-Za-z0-9_.{}\[\]-]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, value = m.groups()
        if field not in supported:
            raise bad_request(f'field label not supported: {field}')
        out.append(FieldRequirement(field, op == "!=", value))
    return out


def fields_match(reqs: list[FieldRequirement], supported: Mapping[str, FieldGetter], obj: dict[str, Any]) -> bool:
    for r in reqs:
        equal = supported[r.field](obj) == r.value
        if equal == r.negate:
            return False
    return True
