"""Wake-ups keyed by object: how a shared engine stream (Docker events, a Kubernetes watch) tells the
kernels that care that something changed, without any of them polling."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class ChangeSignals:
    """Per-key sets of events; a waiter registers, re-reads the state, then waits for the next change."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    @contextlib.contextmanager
    def watch(self, key: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``key`` changes. Register first, then read, then wait: nothing is missed."""
        changed = asyncio.Event()
        self._waiters.setdefault(key, set()).add(changed)
        try:
            yield changed
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(changed)
                if not waiters:
                    del self._waiters[key]

    def wake(self, key: str) -> None:
        for changed in self._waiters.get(key, ()):
            changed.set()

    def wake_all(self) -> None:
        for waiters in self._waiters.values():
            for changed in waiters:
                changed.set()
