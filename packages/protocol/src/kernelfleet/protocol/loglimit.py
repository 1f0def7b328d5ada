"""Rate-limited warnings for things an attacker can cause at will (rejected reports, refused comm requests).

One log line per rejected connection lets whoever reaches a port fill the log (thousands of lines a
second). The broker and every launcher's comm server share this limiter: the first event of a kind is
logged at once, later ones within the interval are counted, and the next line that gets through says
how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class LogLimiter:
    """At most one line per ``key`` and ``interval`` seconds; the suppressed count rides on the next line."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 256,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._max_keys = max_keys
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, key: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless ``key`` was logged within the interval; True when it was logged."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        if last is None and len(self._last) >= self._max_keys:  # bounded: attacker-chosen keys cannot grow it
            oldest = min(self._last, key=self._last.__getitem__)
            self._last.pop(oldest)
            self._suppressed.pop(oldest, None)
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += " (%d similar events in the last %.0f s not logged)"
            args = (*args, suppressed, self._interval)
        self._logger.log(level, message, *args)
        return True

    def warning(self, key: str, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, message, *args)

    @property
    def suppressed(self) -> int:
        """Events counted but not yet reported in a log line."""
        return sum(self._suppressed.values())
