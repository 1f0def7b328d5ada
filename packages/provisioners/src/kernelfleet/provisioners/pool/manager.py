"""A warm pool: ``size`` standby launchers of one kernelspec, kept registered and ready to be claimed.

One ``WarmPool`` per pool id and event loop (``pool_for``). The provisioner of a starting kernel calls
``take()`` — synchronous, so two launches never get the same standby — and claims what it got; an empty
pool returns None and the launch goes cold. Everything else happens in the background and never blocks a
launch: each ``take`` and each loss starts replacements (at most ``max_starting`` at once, the engine's
limit for this pool); a standby that fails to start or register is counted, logged with the engine's
reason, and retried after a back-off that doubles up to a minute. A standby idle for ``idle_ttl`` seconds
is stopped, and the pool refills only when the next launch takes from it, so an unused kernelspec costs
nothing. A standby that dies (its connection to the broker ends) is replaced. A claimed standby is never
returned: it is the kernel now, owned by its provisioner.

Standbys are started by an engine strategy (``StandbyEngine``: ``ssh.standbys.LocalStandbys`` for local
processes), which makes them look on the engine like the launches of this server that they become.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.leases import PerLoop
from kernelfleet.provisioners.pool.link import StandbyLink

FIRST_RETRY, MAX_RETRY = 1.0, 60.0
REFILL_DEFER_MAX = 5  # refill_delays: how long launches that keep coming may put a refill off


class StandbyEngine(Protocol):
    """How one engine starts, watches and stops a pool's standbys."""

    name: str

    async def start(self, standby_id: str, token: str) -> Any:
        """Start a standby launcher with its registration token; return the engine's handle on it."""

    async def exited(self, handle: Any) -> str:
        """Wait until the standby has ended; a description of how (its exit status, its last output)."""

    async def stop(self, handle: Any) -> None:
        """Stop the standby and let go of it (an unclaimed standby holds no user state)."""


@dataclass(frozen=True)
class PoolSettings:
    """A pool's sizing, from the kernelspec's provisioner config (or the server's)."""

    pool_id: str
    size: int
    idle_ttl: float
    max_starting: int = 4
    register_timeout: float = 60.0
    refill_delay: float = 1.0  # after a claimed kernel reported: its first cells run before a replacement starts


class WarmPool:
    """The standbys of one pool, and the counts its log lines and tests read (``stats``)."""

    def __init__(self, settings: PoolSettings, engine: StandbyEngine, broker: ResponseBroker,
                 log: logging.Logger) -> None:
        self.settings = settings
        self.engine = engine
        self.broker = broker
        self.log = log
        self.idle: deque[StandbyLink] = deque()
        self.starting = 0
        self.stats: Counter[str] = Counter()  # started, registered, claimed, lost, culled, failed, empty
        self.wanted = True  # False once the idle TTL culled standbys: refill at the next take()
        self.closed = False
        self._culls: dict[StandbyLink, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures_in_a_row = 0
        self._retry: asyncio.TimerHandle | None = None
        self._refill: asyncio.TimerHandle | None = None  # launched(): the refill due once launches pause
        self._refill_first = 0.0  # when the first launch the pending refill waits for ended
        self._change: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def pool_id(self) -> str:
        return self.settings.pool_id

    # ------------------------------------------------------------------------------------- claims
    def take(self) -> StandbyLink | None:
        """A registered standby for a launch, removed from the pool; None when none is ready (launch cold).

        An empty pool starts filling at once. After a successful take the refill waits for the claimer's
        ``launched()``, so the replacement standby's start-up does not compete for the CPU with the very kernel
        the pool exists to start fast."""
        self.wanted = True
        link = None
        while self.idle and link is None:
            candidate = self.idle.popleft()
            self._disarm_cull(candidate)
            if not candidate.lost:
                link = candidate
        self.stats["claimed" if link is not None else "empty"] += 1
        self._log("claimed" if link is not None else "empty: cold launch", logging.DEBUG if link else logging.INFO)
        if link is None:
            self.fill()
        self._changed()
        return link

    def launched(self) -> None:
        """The launch that took a standby has ended (reported, or failed): refill once launches have paused for
        ``refill_delay`` seconds, so the replacements' start-up (a whole interpreter and ipykernel's imports each)
        does not slow the first cells of the kernels just claimed. A burst of claims (a class starting its notebooks)
        therefore refills after its last kernel, not in the middle of it; a steady stream of claims still refills
        at most ``REFILL_DEFER_MAX`` delays after the first launch waiting. An empty pool's next ``take`` refills
        at once."""
        loop = asyncio.get_running_loop()
        delay = self.settings.refill_delay
        if self._refill is None:
            self._refill_first = loop.time()
        else:
            self._refill.cancel()
        self._refill = loop.call_at(min(loop.time() + delay, self._refill_first + REFILL_DEFER_MAX * delay),
                                    self._refill_after_launches)

    def _refill_after_launches(self) -> None:
        self._refill = None
        self.fill()

    def discard(self, link: StandbyLink, why: str) -> None:
        """A taken standby whose claim failed: stop it (it never returns to the pool); the launch goes cold and
        calls ``launched()`` when it ends."""
        self.stats["failed"] += 1
        self.log.warning("Pool %s: standby %s could not be claimed: %s", self.pool_id, link.standby_id, why)
        link.drop()
        self._background(self.engine.stop(link.handle))

    # ------------------------------------------------------------------------------------- filling
    def fill(self) -> None:
        """Start standbys until the pool is full (never more than ``max_starting`` at once); returns at once."""
        if self.closed or not self.wanted or self._retry is not None:
            return
        missing = self.settings.size - len(self.idle) - self.starting
        for _ in range(max(0, min(missing, self.settings.max_starting - self.starting))):
            self.starting += 1
            self._background(self._start_one())

    async def _start_one(self) -> None:
        standby_id = f"standby-{secrets.token_hex(10)}"
        pending = self.broker.expect_standby(standby_id, self.pool_id)
        handle = None
        try:
            self.stats["started"] += 1
            handle = await self.engine.start(standby_id, pending.token)
            exited = asyncio.ensure_future(self.engine.exited(handle))
            try:
                done, _ = await asyncio.wait({pending.future, exited}, timeout=self.settings.register_timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                exited.cancel()
            if pending.future in done:
                registration, sock = pending.future.result()
            elif exited in done:
                raise RuntimeError(exited.result())
            else:
                raise RuntimeError(f"it did not register within {self.settings.register_timeout:g}s")
        except BaseException as err:  # the start failed, or the pool is closing (CancelledError)
            pending.cancel()
            self.starting -= 1
            if handle is not None:
                await self.engine.stop(handle)
            if not isinstance(err, Exception):
                raise
            self._failed(standby_id, err)
            return
        self.starting -= 1
        self._failures_in_a_row = 0
        link = StandbyLink(registration, sock, handle, self._lost)
        if self.closed or not self.wanted:  # culled meanwhile (or closing): this one is not wanted either
            self.stats["culled"] += 1
            link.drop()
            await self.engine.stop(handle)
            self._changed()
            return
        self.idle.append(link)
        self._culls[link] = asyncio.get_running_loop().call_later(self.settings.idle_ttl, self._cull, link)
        self.stats["registered"] += 1
        self._log(f"standby {standby_id} ready")
        self._changed()
        self.fill()

    def _failed(self, standby_id: str, err: BaseException) -> None:
        self.stats["failed"] += 1
        self._failures_in_a_row += 1
        delay = min(FIRST_RETRY * 2 ** (self._failures_in_a_row - 1), MAX_RETRY)
        self.log.warning("Pool %s: standby %s failed on %s: %s; trying again in %gs", self.pool_id, standby_id,
                         self.engine.name, err, delay)
        self._changed()
        if self._retry is None and not self.closed:
            self._retry = asyncio.get_running_loop().call_later(delay, self._retry_fill)

    def _retry_fill(self) -> None:
        self._retry = None
        self.fill()

    # ------------------------------------------------------------------------------------- losses and culls
    def _lost(self, link: StandbyLink) -> None:
        """The standby's connection ended before any claim: it died (or its engine restarted). Replace it."""
        if link in self.idle:
            self.idle.remove(link)
        self._disarm_cull(link)
        lost = getattr(self.engine, "lost", None)  # optional: an engine that places standbys (ssh.remote_standbys)
        if lost is not None:
            lost(link.handle)
        self.stats["lost"] += 1
        self.log.warning("Pool %s: standby %s is gone (its connection ended); replacing it", self.pool_id,
                         link.standby_id)
        self._background(self._reap(link))
        self._changed()
        self.fill()

    def engine_lost(self, handle: Any, why: str) -> None:
        """The engine says an idle standby ended (its pod deleted or failed: a watch event) before its connection to
        the broker did, as when its node is lost without closing the connection. Called by engines that watch their
        standbys (``k8s.standbys``); a standby already claimed or lost is none of the pool's business any more."""
        link = next((candidate for candidate in self.idle if candidate.handle is handle), None)
        if link is None:
            return
        self.log.debug("Pool %s: standby %s ended on %s: %s", self.pool_id, link.standby_id, self.engine.name, why)
        link.drop()
        self._lost(link)

    async def _reap(self, link: StandbyLink) -> None:
        self.log.debug("Pool %s: standby %s ended: %s", self.pool_id, link.standby_id,
                       await self._exit_of(link))
        await self.engine.stop(link.handle)

    async def _exit_of(self, link: StandbyLink) -> str:
        try:
            return await asyncio.wait_for(self.engine.exited(link.handle), 5.0)
        except TimeoutError:
            return "still running; stopping it"

    def _cull(self, link: StandbyLink) -> None:
        """Idle past the TTL: stop it, and refill only when a launch wants this pool again."""
        self._culls.pop(link, None)
        if link not in self.idle:
            return
        self.idle.remove(link)
        self.wanted = False
        self.stats["culled"] += 1
        link.drop()
        self._background(self.engine.stop(link.handle))
        self._log(f"standby {link.standby_id} culled after {self.settings.idle_ttl:g}s idle")
        self._changed()

    def _disarm_cull(self, link: StandbyLink) -> None:
        timer = self._culls.pop(link, None)
        if timer is not None:
            timer.cancel()

    # ------------------------------------------------------------------------------------- observing
    def _log(self, what: str, level: int = logging.INFO) -> None:
        self.log.log(level, "Pool %s (%s): %s; idle %d of %d, starting %d, claimed %d, failures %d, lost %d",
                     self.pool_id, self.engine.name, what, len(self.idle), self.settings.size, self.starting,
                     self.stats["claimed"], self.stats["failed"], self.stats["lost"])

    def _changed(self) -> None:
        change, self._change = self._change, asyncio.get_running_loop().create_future()
        change.set_result(None)

    async def until(self, predicate: Callable[[WarmPool], bool]) -> None:
        """Wait (without polling) until ``predicate(pool)`` holds; tests and the benchmark synchronise on it."""
        while not predicate(self):
            await asyncio.shield(self._change)

    async def settled(self) -> None:
        """Wait until every standby start and stop under way has finished (tests: nothing left behind)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop every standby this pool holds or is starting (server shutdown, ``leases.close_all``)."""
        self.closed = True
        for timer in (self._retry, self._refill):
            if timer is not None:
                timer.cancel()
        links = list(self.idle)
        self.idle.clear()
        for link in links:
            self._disarm_cull(link)
            link.drop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *(self.engine.stop(link.handle) for link in links),
                             return_exceptions=True)
        _pools.forget(self)
        self._log("closed")


    def abandon(self) -> None:
        """The pool's loop is closed: close its connections, and its standbys exit by themselves (they end when their
        connection to the broker ends)."""
        self.closed = True
        for link in self.idle:
            if link.sock.fileno() >= 0:
                link.sock.close()
        self.idle.clear()


_pools: PerLoop[WarmPool] = PerLoop(abandon=WarmPool.abandon, close_first=True)  # before the engine clients


def pool_for(pool_id: str, create: Callable[[], WarmPool]) -> WarmPool:
    """The running loop's pool ``pool_id``; ``create()`` makes it on first use (synchronously: never two)."""
    return _pools.get_or_create(create, key=pool_id)


def pools() -> list[WarmPool]:
    """The running loop's pools (tests, the benchmark, a server's shutdown)."""
    return _pools.of_loop(asyncio.get_running_loop())
