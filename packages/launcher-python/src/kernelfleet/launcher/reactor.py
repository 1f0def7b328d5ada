"""A minimal event loop for the long-lived supervisor: file descriptors, timers and signals, nothing else.

Why not asyncio: the supervisor lives as long as its kernel, next to it, for every kernel, and importing
asyncio alone costs about 8 MB of private memory per process (issue 15, section 3). The supervisor only
waits for a few sockets, a timer or two and signals, which ``selectors`` and ``signal.set_wakeup_fd``
cover in a hundred lines. Nothing here polls: ``select`` sleeps until a descriptor is ready, a signal
arrives (its number is written to the wake-up pipe) or the next timer is due.

Used by supervisor.py and comm_server.py; tests run one on a thread of their own (``run`` until ``stop``).
"""

from __future__ import annotations

import heapq
import itertools
import os
import selectors
import signal
import time

TYPE_CHECKING = False  # typing itself stays unloaded: these modules run in the launcher's small supervisor
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Callback = Callable[[], Any]


class Timer:
    """A call scheduled by ``Reactor.call_later``; ``cancel`` before it is due and it never happens."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Reactor:
    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._signals: dict[int, Callback] = {}
        self._signals_installed = False
        self._stopping = False
        # Signal numbers arrive here (signal.set_wakeup_fd); a 0 byte is ``stop`` from another thread.
        self._wakeup = os.pipe()
        for fd in self._wakeup:
            os.set_blocking(fd, False)
        self.add_reader(self._wakeup[0], self._read_wakeup)

    # -- descriptors -----------------------------------------------------------------------------

    def add_reader(self, fd: Any, callback: Callback) -> None:
        self._selector.register(fd, selectors.EVENT_READ, callback)

    def remove_reader(self, fd: Any) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    # -- timers ----------------------------------------------------------------------------------

    def time(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callback) -> Timer:
        timer = Timer(self.time() + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    # -- signals ---------------------------------------------------------------------------------

    def add_signal_handler(self, signum: int, callback: Callback) -> None:
        """Run ``callback`` from the loop (never from inside a signal handler) each time ``signum`` arrives."""
        if not self._signals_installed:
            signal.set_wakeup_fd(self._wakeup[1], warn_on_full_buffer=False)
            self._signals_installed = True
        self._signals[signum] = callback
        signal.signal(signum, _ignore_in_handler)

    def _read_wakeup(self) -> None:
        try:
            data = os.read(self._wakeup[0], 4096)
        except BlockingIOError:
            return
        for signum in data:
            callback = self._signals.get(signum)
            if callback is not None:
                callback()

    # -- running ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Dispatch events until ``stop`` is called (at once if it was called before)."""
        while not self._stopping:
            self._run_due_timers()
            if self._stopping:
                break
            timeout = max(0.0, self._timers[0][0] - self.time()) if self._timers else None
            for key, _ in self._selector.select(timeout):
                key.data()
                if self._stopping:
                    break

    def _run_due_timers(self) -> None:
        now = self.time()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)

    def stop(self) -> None:
        """End ``run``; safe to call from another thread or before ``run``."""
        self._stopping = True
        try:
            os.write(self._wakeup[1], b"\0")
        except BlockingIOError:  # the pipe is full of wake-ups already
            pass

    def close(self) -> None:
        if self._signals_installed:
            signal.set_wakeup_fd(-1)
            self._signals_installed = False
        self._selector.close()
        for fd in self._wakeup:
            os.close(fd)


def _ignore_in_handler(signum: int, frame: object) -> None:
    """The Python-level handler does nothing: the wake-up pipe carries the signal to the loop."""
