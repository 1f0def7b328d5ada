"""One Docker client and one Docker event stream per event loop, shared by every Docker kernel.

A per-kernel ``container.wait()`` would hold one HTTP connection per kernel (aiohttp caps a
connector at 100); a single ``/events`` stream filtered on our label wakes whichever kernels an
event concerns, and they re-read their state. The stream starts ``since`` the engine was made and
resumes from the last event it saw, so an event that happens while it (re)connects is replayed,
not lost. The client is leased: it opens with the first kernel that needs it and closes once the
last one has released it (``leases.close_all`` closes it at server shutdown regardless).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

import aiodocker
import aiohttp

from kernelfleet.provisioners.change_signals import ChangeSignals
from kernelfleet.provisioners.labels import APP, LABEL_APP, LABEL_KERNEL_ID
from kernelfleet.provisioners.leases import Leases, PerLoop

LABEL_SWARM_SERVICE_ID = "com.docker.swarm.service.id"  # Swarm's own label on a task's container

log = logging.getLogger("kernelfleet.docker")

ENGINE_ERRORS = (aiodocker.DockerError, aiohttp.ClientError, OSError, asyncio.TimeoutError)


def describe_engine_error(err: BaseException) -> str:
    """Docker's own message, or why the daemon could not be reached."""
    if isinstance(err, aiodocker.DockerError):
        return str(err.message).strip() or f"HTTP {err.status}"
    if isinstance(err, aiohttp.ClientConnectorError | OSError):
        return f"the Docker daemon is unreachable ({err})"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


class DockerEngine:
    """The loop's Docker client, its event stream, and the kernels waiting on events."""

    _instances: ClassVar[PerLoop[DockerEngine]] = PerLoop()

    def __init__(self, url: str | None = None) -> None:
        self.client = aiodocker.Docker(url=url)
        self.leases = Leases(self.close)
        self._signals = ChangeSignals()
        self._listeners: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._since_ns = time.time_ns() - 1_000_000_000  # a second of slack for clock granularity
        self._closing = False
        self._stream = asyncio.ensure_future(self._follow_events())
        self._dispatch: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------------- leasing
    @classmethod
    def acquire(cls, url: str | None = None) -> DockerEngine:
        """The loop's engine with one more lease."""
        engine = cls._instances.get_or_create(lambda: cls(url))
        engine.leases.take()
        return engine

    async def release(self) -> None:
        """Give back one lease; the last one closes the client."""
        await self.leases.give_back()

    async def close(self) -> None:
        self._instances.forget(self)
        if self._closing:
            return
        self._closing = True
        self._signals.wake_all()
        for task in (self._stream, self._dispatch):
            if task is not None:
                task.cancel()
        await asyncio.gather(self._stream, *([self._dispatch] if self._dispatch else []), return_exceptions=True)
        await self.client.close()

    # ------------------------------------------------------------------------------------- events
    def watch(self, key: str) -> contextlib.AbstractContextManager[asyncio.Event]:
        """An event set whenever Docker reports something about this kernel's containers (``key``: its kernel id)
        or about the container whose id ``key`` is."""
        return self._signals.watch(key)

    def listen(self, kernel_id: str, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Hand Docker's events about this kernel's containers to ``callback`` (launch events); the returned call
        stops it."""
        self._listeners[kernel_id] = callback

        def stop() -> None:
            if self._listeners.get(kernel_id) is callback:
                del self._listeners[kernel_id]

        return stop

    def _on_event(self, event: dict[str, Any]) -> None:
        nano = event.get("timeNano")
        if isinstance(nano, int) and nano > self._since_ns:
            self._since_ns = nano
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        kernel_id = attributes.get(LABEL_KERNEL_ID)
        if kernel_id:
            log.debug("Kernel %s: docker event %s %s", kernel_id, event.get("Type"), event.get("Action"))
            self._signals.wake(kernel_id)
            listener = self._listeners.get(kernel_id)
            if listener is not None:
                try:
                    listener(event)
                except Exception as err:  # a listener's bug must not end the stream every kernel depends on
                    log.debug("Kernel %s: docker event listener failed: %s", kernel_id, err)
        if actor.get("ID"):  # a warm pool's standby, claimed or not, has no kernel_id label: waiters go by its id
            self._signals.wake(str(actor["ID"]))
        if attributes.get(LABEL_SWARM_SERVICE_ID):  # and a Swarm standby's task by its service's (swarm_standbys)
            self._signals.wake(str(attributes[LABEL_SWARM_SERVICE_ID]))

    async def _follow_events(self) -> None:
        """Keep one filtered event stream open; after a break, resume where it stopped."""
        subscriber = self.client.events.subscribe(create_task=False)
        self._dispatch = asyncio.ensure_future(self._consume(subscriber))
        filters = json.dumps({"label": [f"{LABEL_APP}={APP}"], "type": ["container"]})
        delay = 0.1
        while not self._closing:
            since = f"{self._since_ns // 1_000_000_000}.{self._since_ns % 1_000_000_000:09d}"
            try:
                await self.client.events.run(since=since, filters=filters)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except ENGINE_ERRORS as err:
                log.warning("Docker event stream broke (%s); reconnecting in %.1fs", describe_engine_error(err), delay)
            self._signals.wake_all()  # whatever was missed, everyone re-reads their state
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _consume(self, subscriber: Any) -> None:
        while True:
            event = await subscriber.get()
            if event is not None:
                self._on_event(event)

