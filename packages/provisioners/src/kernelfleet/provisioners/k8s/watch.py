"""One list-and-watch per namespace and resource type per event loop, shared by every kernel there.

A kernel never polls the API for its pod: the namespace's watch keeps a cache of every object labelled with a
``kernel_id`` (or another label selection: a warm pool's standby pods, ``k8s.standbys``) and wakes the kernels an
event concerns, which then read their object from the cache. The watch
lists once, then follows from that list's resourceVersion; a stream the server ends is resumed from the last
version seen (BOOKMARK events, which it asks for, advance that version while nothing changes), and a 410 (history
compacted) relists, waking everyone so that nothing changed in between is missed. A connection that goes silent
(a peer or middlebox lost without a FIN) is given up after ``idle_timeout`` seconds without a byte (the client's
read timeout; env KF_KUBERNETES_WATCH_IDLE_SECONDS, default 90: the API server sends a bookmark about every
minute) and resumed the same way. It runs while at least one kernel holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.provisioners.change_signals import ChangeSignals
from kernelfleet.provisioners.envconfig import env_number
from kernelfleet.provisioners.k8s.client import IDLE_SECONDS, KubeApi, describe_api_error
from kernelfleet.provisioners.labels import LABEL_KERNEL_ID
from kernelfleet.provisioners.leases import Leases, PerLoop

log = logging.getLogger("kernelfleet.kubernetes")

WATCH_SECONDS = 290  # the server ends each stream after this; it is resumed from the last resourceVersion
IDLE_TIMEOUT = 90.0  # seconds without a byte (event or bookmark) after which a stream counts as dead
CONNECT_TIMEOUT = 30.0
ListCall = Callable[..., Awaitable[Any]]
_PROGRESS = ""  # the signal key of BOOKMARK progress (no object has an empty name)


class SharedWatch:
    """The cache of one resource type's kernel objects in one namespace, kept current by one watch."""

    _instances: ClassVar[PerLoop[SharedWatch]] = PerLoop()

    def __init__(self, api: KubeApi, kind: str, namespace: str, make_call: Callable[[client.ApiClient], ListCall],
                 selector: str = LABEL_KERNEL_ID):
        self.api = api
        self.kind = kind
        self.namespace = namespace
        self.selector = selector  # the objects followed: kernels' (``kernel_id``), or a warm pool's standbys
        self.objects: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self.error: str | None = None
        #: The resourceVersion the cache is current to (None: list first); kept when a stream breaks.
        self.version: str | None = None
        self.idle_timeout = env_number(("KF_KUBERNETES_WATCH_IDLE_SECONDS",), IDLE_TIMEOUT)
        self.subscribers = Leases(self.close, linger=IDLE_SECONDS)
        self._make_call = make_call
        self._signals = ChangeSignals()
        self._closing = False
        self._task = asyncio.ensure_future(self._run())
        api.on_close(self.close)

    # ------------------------------------------------------------------------------------- sharing
    @classmethod
    def acquire(cls, api: KubeApi, kind: str, namespace: str,
                make_call: Callable[[client.ApiClient], ListCall], selector: str = LABEL_KERNEL_ID) -> SharedWatch:
        watch = cls._instances.get_or_create(lambda: cls(api, kind, namespace, make_call, selector),
                                             (kind, namespace, selector))
        watch.subscribers.take()
        return watch

    @classmethod
    def pods(cls, api: KubeApi, namespace: str, selector: str = LABEL_KERNEL_ID) -> SharedWatch:
        """The namespace's kernel pods (``selector``: another label selection, e.g. a warm pool's standby pods)."""
        def make_call(api_client: client.ApiClient) -> ListCall:
            return functools.partial(client.CoreV1Api(api_client).list_namespaced_pod, namespace)

        return cls.acquire(api, "pods", namespace, make_call, selector)

    @classmethod
    def custom_objects(cls, api: KubeApi, group: str, version: str, plural: str, namespace: str) -> SharedWatch:
        def make_call(api_client: client.ApiClient) -> ListCall:
            return functools.partial(
                client.CustomObjectsApi(api_client).list_namespaced_custom_object, group, version, namespace, plural
            )

        return cls.acquire(api, f"{plural}.{group}/{version}", namespace, make_call)

    async def release(self, *, linger: bool = True) -> None:
        """Give back one subscription; without subscribers the watch stops after IDLE_SECONDS (at once when
        ``linger`` is off, e.g. because its namespace is being deleted)."""
        await self.subscribers.give_back(linger=linger)

    async def close(self) -> None:
        self._instances.forget(self)
        self.subscribers.cancel_idle_close()
        if self._closing:
            return
        self._closing = True
        self._signals.wake_all()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    # ------------------------------------------------------------------------------------- reading
    def get(self, name: str) -> dict[str, Any] | None:
        return self.objects.get(name)

    def changes(self, name: str) -> contextlib.AbstractContextManager[asyncio.Event]:
        """An event set whenever the object ``name`` changes (or the cache is rebuilt)."""
        return self._signals.watch(name)

    def progress(self) -> contextlib.AbstractContextManager[asyncio.Event]:
        """An event set whenever a BOOKMARK advances ``version`` while no object changed."""
        return self._signals.watch(_PROGRESS)

    async def until(self, name: str, done: Callable[[dict[str, Any] | None], bool], timeout: float | None = None) -> (
            dict[str, Any] | None):
        """Wait until ``done(object or None)`` holds for the cached object; return it. TimeoutError otherwise."""
        with self.changes(name) as changed:
            async with asyncio.timeout(timeout):
                await self.synced.wait()
                while True:
                    current = self.objects.get(name)
                    if done(current):
                        return current
                    if self._closing:
                        raise RuntimeError(f"the {self.kind} watch of namespace {self.namespace} was closed")
                    await changed.wait()
                    changed.clear()

    # ------------------------------------------------------------------------------------- following
    async def _run(self) -> None:
        delay = 0.1
        while not self._closing:
            try:
                api_client = await self.api.client()
                call = self._make_call(api_client)
                if self.version is None:
                    self.version = await self._list(api_client, call)
                await self._follow(call)
                delay = 0.1
                continue
            except asyncio.CancelledError:
                raise
            except ApiException as err:
                if err.status == 410:
                    log.debug("%s watch in %s: history compacted, relisting", self.kind, self.namespace)
                    self.version = None
                    continue
                self.error = describe_api_error(err)
            except TimeoutError:  # aiohttp's read timeout: nothing came for idle_timeout seconds
                self.error = f"no event or bookmark for {self.idle_timeout:g}s"
            except Exception as err:  # a broken stream must not end the watch: reconnect with back-off
                self.error = describe_api_error(err)
            log.warning("Kubernetes %s watch in namespace %s broke (%s); reconnecting in %.1fs", self.kind,
                        self.namespace, self.error, delay)
            self._signals.wake_all()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _list(self, api_client: client.ApiClient, call: ListCall) -> str:
        listed = await call(label_selector=self.selector)
        raw = listed if isinstance(listed, dict) else api_client.sanitize_for_serialization(listed)
        self.objects = {item["metadata"]["name"]: item for item in raw.get("items") or []}
        self.error = None
        self.synced.set()
        self._signals.wake_all()
        return str(raw["metadata"]["resourceVersion"])

    async def _follow(self, call: ListCall) -> None:
        """Follow one stream from ``self.version`` until the server ends it, advancing ``self.version``; raises
        TimeoutError when nothing arrives for ``idle_timeout`` seconds."""
        response = await call(label_selector=self.selector, watch=True, resource_version=self.version,
                              timeout_seconds=WATCH_SECONDS, allow_watch_bookmarks=True, _preload_content=False,
                              _request_timeout=(CONNECT_TIMEOUT, self.idle_timeout))
        try:
            if not 200 <= response.status <= 299:  # unread responses are not checked by the client
                body = await response.text()
                raise ApiException(status=response.status, reason=body[:500])
            while True:
                line = await response.content.readline()
                if not line:
                    return
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise ApiException(status=int(obj.get("code") or 500), reason=obj.get("message"))
                meta = obj.get("metadata") or {}
                self.version = str(meta.get("resourceVersion") or self.version)
                name = meta.get("name")
                if kind == "BOOKMARK" or not name:
                    self._signals.wake(_PROGRESS)
                    continue
                log.debug("%s watch in %s: %s %s (%s)", self.kind, self.namespace, kind, name,
                          (obj.get("status") or {}).get("phase") or "")
                if kind == "DELETED":
                    self.objects.pop(name, None)
                else:
                    self.objects[name] = obj
                self._signals.wake(name)
        finally:
            response.release()
