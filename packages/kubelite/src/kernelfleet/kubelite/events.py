"""core/v1 Events as kubelet and the scheduler record them, including count aggregation of repeats."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from .clock import now
from .resources import ResourceType
from .store import Store


class EventRecorder:
    def __init__(self, store: Store, events_rt: ResourceType, node_name: str) -> None:
        self._store = store
        self._rt = events_rt
        self._node = node_name
        self._seen: dict[tuple[str, ...], tuple[str, str]] = {}

    def record(self, obj: dict[str, Any], type_: str, reason: str, message: str, component: str = "kubelet",
               field_path: str | None = None) -> None:
        """Record (or bump the count of) an event about ``obj``; silently skipped if its namespace is gone."""
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        key = (meta.get("uid", ""), type_, reason, message, component, field_path or "")
        stamp = now()
        previous = self._seen.get(key)
        if previous is not None:
            def bump(ev: dict[str, Any]) -> None:
                ev["count"] = int(ev.get("count", 1)) + 1
                ev["lastTimestamp"] = stamp

            if self._store.mutate(self._rt, previous[0], previous[1], bump) is not None:
                return
        involved: dict[str, Any] = {
            "kind": obj.get("kind"), "namespace": meta.get("namespace"), "name": meta.get("name"),
            "uid": meta.get("uid"), "apiVersion": obj.get("apiVersion"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        if field_path:
            involved["fieldPath"] = field_path
        name = f"{meta.get('name')}.{secrets.token_hex(8)}"
        event = {
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "uid": str(uuid.uuid4()), "creationTimestamp": stamp},
            "involvedObject": involved, "reason": reason, "message": message,
            "source": {"component": component, **({"host": self._node} if component == "kubelet" else {})},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1, "type": type_,
            "eventTime": None, "reportingComponent": component,
            "reportingInstance": self._node if component == "kubelet" else "",
        }
        try:
            self._store.create(self._rt, event)
        except Exception:  # the namespace may be going away; events are best-effort, as on a cluster
            return
        self._seen[key] = (ns, name)

