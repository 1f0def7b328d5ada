"""Clients shared by every kernel of one event loop, and how they are held and closed.

Five objects are shared this way: the response broker, the Kubernetes API client, the Kubernetes watches, the
Docker engine client and the SSH connection pool. Each is bound to the loop it was made on (sockets, tasks and
aiohttp sessions cannot move between loops), is made when the first kernel of that loop needs it, and is closed
when its last holder lets go or when the server shuts down. They all use the two pieces here:

- :class:`PerLoop` finds (or makes) the running loop's object, optionally per key (a watch per namespace and
  kind), forgets the objects of loops that are already closed, and closes the running loop's objects;
- :class:`Leases` counts a shared object's holders and closes it after the last one, at once or after an idle
  time, so that a burst of kernels does not pay for a new client each.

:func:`close_all` closes every shared object of the running loop, newest kind first (the Kubernetes watches
before the client they read from, the broker last): the one call a server's shutdown, a CLI's end or a test's
tear-down makes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_registries: list[PerLoop[Any]] = []


class PerLoop(Generic[T]):
    """The objects of one kind, one per event loop (and per key, for kinds that have several per loop)."""

    def __init__(self, *, close: Callable[[T], Awaitable[None]] | None = None,
                 abandon: Callable[[T], None] | None = None, close_first: bool = False) -> None:
        """``close`` releases an object on its own (running) loop (default: its ``close()``); ``abandon`` releases
        what it can of one whose loop is already closed (plain sockets), found when the next loop asks.
        ``close_first``: ``close_all`` closes this kind before every other (warm pools, whose standbys are removed
        through the engine clients), whatever the order the kinds were made in."""
        self._close = close or _close_method
        self._abandon = abandon
        self.close_first = close_first
        self._objects: dict[asyncio.AbstractEventLoop, dict[Hashable, T]] = {}
        _registries.append(self)

    def get_or_create(self, create: Callable[[], T], key: Hashable = None) -> T:
        """The running loop's object for ``key``; ``create()`` makes it the first time (synchronously, so two
        kernels starting at once never make two)."""
        loop = asyncio.get_running_loop()
        self._forget_closed_loops()
        objects = self._objects.setdefault(loop, {})
        found = objects.get(key)
        if found is None:
            found = objects[key] = create()
        return found

    def get(self, loop: asyncio.AbstractEventLoop, key: Hashable = None) -> T | None:
        """The object ``loop`` has for ``key``, if any (tests and shutdown code ask with the running loop)."""
        return self._objects.get(loop, {}).get(key)

    def __getitem__(self, loop: asyncio.AbstractEventLoop) -> T:
        found = self.get(loop)
        if found is None:
            raise KeyError(loop)
        return found

    def __contains__(self, loop: object) -> bool:
        """True while ``loop`` has any object of this kind."""
        return bool(self._objects.get(loop))  # type: ignore[call-overload]

    def of_loop(self, loop: asyncio.AbstractEventLoop) -> list[T]:
        return list(self._objects.get(loop, {}).values())

    def forget(self, obj: T) -> None:
        """Stop handing out ``obj`` (it is closing); the next caller gets a new one."""
        for loop, objects in list(self._objects.items()):
            for key in [k for k, v in objects.items() if v is obj]:
                del objects[key]
            if not objects:
                del self._objects[loop]

    async def close_running(self) -> None:
        """Close every object of the running loop, whoever still holds it."""
        objects = self._objects.pop(asyncio.get_running_loop(), {})
        for obj in objects.values():
            await self._close(obj)

    def _forget_closed_loops(self) -> None:
        for loop in [lp for lp in self._objects if lp.is_closed()]:
            for obj in self._objects.pop(loop).values():
                if self._abandon is not None:
                    self._abandon(obj)


async def _close_method(obj: Any) -> None:
    await obj.close()


class Leases:
    """How many kernels hold a shared object; without holders it closes, after ``linger`` seconds if given."""

    def __init__(self, close: Callable[[], Awaitable[None]], linger: float = 0.0) -> None:
        self.count = 0
        self._close = close
        self._linger = linger
        self._idle: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None

    def take(self) -> None:
        """One more holder; synchronous, so a lease never races a close."""
        self.count += 1
        self.cancel_idle_close()

    async def give_back(self, *, linger: bool = True) -> None:
        """One holder fewer; the last one closes the object (at once when ``linger`` is off, e.g. because what it
        watches is being deleted)."""
        self.count = max(0, self.count - 1)
        if self.count:
            return
        if not linger or self._linger <= 0:
            await self._close()
        elif self._idle is None:
            self._idle = asyncio.get_running_loop().call_later(self._linger, self._close_when_idle)

    def cancel_idle_close(self) -> None:
        """Disarm the idle close (a new holder came, or the object is being closed anyway)."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _close_when_idle(self) -> None:
        self._idle = None
        if self.count == 0:
            self._closing = asyncio.ensure_future(self._close())


async def close_all() -> None:
    """Close every shared client of the running loop (server shutdown, end of a CLI run or of a test)."""
    for registry in sorted(reversed(_registries), key=lambda r: not r.close_first):
        await registry.close_running()
