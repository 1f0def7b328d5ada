"""In-memory object store with etcd-like semantics: one cluster-wide revision counter used as every object's
resourceVersion, a bounded change history for watch resumption, and compaction that makes old versions 410."""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import already_exists, bad_request, expired, not_found
from .resources import ResourceType

Obj = dict[str, Any]


@dataclass(frozen=True)
class Change:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: tuple[str, str]
    namespace: str
    obj: Obj
    old: Obj | None


@dataclass
class _Subscriber:
    key: tuple[str, str]
    namespace: str | None
    queue: asyncio.Queue[Change | None] = field(default_factory=asyncio.Queue)


class Store:
    """All state of the fake cluster. Runs on one event loop; no locking needed."""

    def __init__(self, history: int = 10000) -> None:
        self.revision = 1000
        self._objects: dict[tuple[str, str], dict[tuple[str, str], Obj]] = {}
        self._history: deque[Change] = deque(maxlen=history)
        self._floor = self.revision  # changes at or below this revision are no longer available
        self._subscribers: list[_Subscriber] = []

    # -- reads ---------------------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self._objects.get(rt.key, {}).get((namespace, name))
        if obj is None:
            raise not_found(rt.plural, rt.group, name)
        return copy.deepcopy(obj)

    def find(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        obj = self._objects.get(rt.key, {}).get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, rt: ResourceType, namespace: str | None = None) -> list[Obj]:
        items = self._objects.get(rt.key, {})
        return [copy.deepcopy(o) for (ns, _), o in sorted(items.items()) if namespace is None or ns == namespace]

    # -- writes --------------------------------------------------------------------------------------------

    def _commit(self, rt: ResourceType, kind: str, obj: Obj, old: Obj | None) -> Obj:
        self.revision += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self.revision)
        ns = meta.get("namespace", "") if rt.namespaced else ""
        bucket = self._objects.setdefault(rt.key, {})
        if kind == "DELETED":
            bucket.pop((ns, meta["name"]), None)
        else:
            bucket[(ns, meta["name"])] = obj
        change = Change(self.revision, kind, rt.key, ns, copy.deepcopy(obj), old)
        if len(self._history) == self._history.maxlen:
            self._floor = self._history[0].rv
        self._history.append(change)
        for sub in list(self._subscribers):
            if sub.key == rt.key and (sub.namespace is None or sub.namespace == ns):
                sub.queue.put_nowait(change)
        return copy.deepcopy(obj)

    def create(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        ns = meta.get("namespace", "") if rt.namespaced else ""
        if (ns, meta["name"]) in self._objects.get(rt.key, {}):
            raise already_exists(rt.plural, rt.group, meta["name"])
        return self._commit(rt, "ADDED", copy.deepcopy(obj), None)

    def update(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        ns = meta.get("namespace", "") if rt.namespaced else ""
        old = self._objects.get(rt.key, {}).get((ns, meta["name"]))
        if old is None:
            raise not_found(rt.plural, rt.group, meta["name"])
        return self._commit(rt, "MODIFIED", copy.deepcopy(obj), copy.deepcopy(old))

    def mutate(self, rt: ResourceType, namespace: str, name: str, fn: Callable[[Obj], None]) -> Obj | None:
        """Apply ``fn`` to a copy and commit it if anything changed; None when the object is gone."""
        current = self.find(rt, namespace, name)
        if current is None:
            return None
        before = copy.deepcopy(current)
        fn(current)
        if current == before:
            return current
        return self.update(rt, current)

    def remove(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        ns = namespace if rt.namespaced else ""
        old = self._objects.get(rt.key, {}).get((ns, name))
        if old is None:
            raise not_found(rt.plural, rt.group, name)
        return self._commit(rt, "DELETED", copy.deepcopy(old), copy.deepcopy(old))

    # -- history -------------------------------------------------------------------------------------------

    def compact(self) -> int:
        """Forget all history up to now, like etcd compaction; older watch resumptions then get 410."""
        self._floor = self.revision
        self._history.clear()
        return self._floor

    def parse_rv(self, value: str | None) -> int | None:
        if value in (None, ""):
            return None
        try:
            rv = int(str(value))
        except ValueError:
            raise bad_request(f'Invalid value: "{value}": strconv.ParseUint: parsing "{value}": invalid syntax'
                              ) from None
        return rv

    async def watch(self, rt: ResourceType, namespace: str | None, since: int | None) -> AsyncIterator[Change]:
        """Changes after revision ``since`` (None or 0: a synthetic ADDED per existing object first)."""
        sub = _Subscriber(rt.key, namespace)
        replay: list[Change]
        if since is None or since == 0:
            replay = [Change(int(o["metadata"]["resourceVersion"]), "ADDED", rt.key,
                             o["metadata"].get("namespace", ""), o, None) for o in self.list(rt, namespace)]
        else:
            if since < self._floor:
                raise expired(since, self._floor + 1)
            replay = [c for c in self._history
                      if c.rv > since and c.key == rt.key and (namespace is None or c.namespace == namespace)]
        self._subscribers.append(sub)
        try:
            for change in replay:
                yield change
            while True:
                item = await sub.queue.get()
                if item is None:
                    return
                yield item
        finally:
            self._subscribers.remove(sub)

    def close_watches(self) -> None:
        for sub in self._subscribers:
            sub.queue.put_nowait(None)
