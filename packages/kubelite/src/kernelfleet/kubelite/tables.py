"""Server-side printing: the ``meta.k8s.io/v1`` Table kubectl asks for (``Accept: application/json;as=Table;...``)
on ``get`` and ``get -w``, with the API server's columns for pods (NAME READY STATUS RESTARTS AGE, and IP/NODE for
``-o wide``) and namespaces (NAME STATUS AGE), and NAME AGE for the rest, as for a resource without printer columns.
The server's list and watch handlers call ``wants_table`` and ``table``.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from .resources import ResourceType

_NAME = {"name": "Name", "type": "string", "format": "name", "priority": 0,
         "description": "Name must be unique within a namespace."}
_AGE = {"name": "Age", "type": "string", "format": "", "priority": 0,
        "description": "CreationTimestamp is a timestamp representing the server time when this object was created."}


def wants_table(accept: str) -> bool:
    """Whether the client prefers a Table (kubectl's first choice; other clients never ask)."""
    first = accept.split(",")[0]
    return "as=Table" in first and "g=meta.k8s.io" in first


def _column(name: str, priority: int = 0, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "type": kind, "format": "", "priority": priority, "description": name}


def age(stamp: str | None, now: _dt.datetime | None = None) -> str:
    """``duration.HumanDuration`` of the time since ``stamp``, as kubectl shows it (``5s``, ``3m2s``, ``4h``)."""
    if not stamp:
        return "<unknown>"
    now = now or _dt.datetime.now(_dt.UTC)
    seconds = int((now - _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds())
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _pod_status(pod: dict[str, Any]) -> str:
    """The kubectl STATUS: a waiting or terminated container's reason over the phase; Terminating when deleted."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            terminated = state["terminated"]
            reason = terminated.get("reason") or f"ExitCode:{terminated.get('exitCode')}"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _cells(rt: ResourceType, obj: dict[str, Any]) -> list[Any]:
    meta = obj["metadata"]
    if rt.plural == "pods" and not rt.group:
        statuses = (obj.get("status") or {}).get("containerStatuses") or []
        containers = (obj.get("spec") or {}).get("containers") or []
        ready = sum(1 for s in statuses if s.get("ready"))
        restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
        status = obj.get("status") or {}
        node = (obj.get("spec") or {}).get("nodeName") or "<none>"
        return [meta["name"], f"{ready}/{len(containers)}", _pod_status(obj), restarts,
                age(meta.get("creationTimestamp")), status.get("podIP") or "<none>", node, "<none>", "<none>"]
    if rt.plural == "namespaces" and not rt.group:
        return [meta["name"], (obj.get("status") or {}).get("phase", ""), age(meta.get("creationTimestamp"))]
    return [meta["name"], age(meta.get("creationTimestamp"))]


def _columns(rt: ResourceType) -> list[dict[str, Any]]:
    if rt.plural == "pods" and not rt.group:
        return [_NAME, _column("Ready"), _column("Status"), _column("Restarts", kind="integer"), _AGE,
                _column("IP", 1), _column("Node", 1), _column("Nominated Node", 1), _column("Readiness Gates", 1)]
    if rt.plural == "namespaces" and not rt.group:
        return [_NAME, _column("Status"), _AGE]
    return [_NAME, _AGE]


def table(rt: ResourceType, items: list[dict[str, Any]], list_meta: dict[str, Any] | None = None,
          *, with_columns: bool = True) -> dict[str, Any]:
    """A Table of ``items``; rows carry the object's metadata (``includeObject=Metadata``, kubectl's default)."""
    rows = [{"cells": _cells(rt, obj), "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                  "metadata": obj["metadata"]}} for obj in items]
    out: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {}}
    if with_columns:
        out["columnDefinitions"] = _columns(rt)
    out["rows"] = rows
    return out
