"""The shared log limiter: an attacker who triggers warnings at will gets one line per interval, with a count."""

from __future__ import annotations

import logging

import pytest

from kernelfleet.protocol.loglimit import LogLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_interval_with_the_suppressed_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    limiter = LogLimiter(logging.getLogger("kf.test.limit"), interval=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="kf.test.limit"):
        logged = [limiter.warning("rejected", "rejected a report from %s", f"peer{i}") for i in range(4000)]
        assert logged.count(True) == 1 and limiter.suppressed == 3999
        clock.now = 10.5
        assert limiter.warning("rejected", "rejected a report from %s", "late")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "rejected a report from peer0",
        "rejected a report from late (3999 similar events in the last 10 s not logged)",
    ]
    assert limiter.suppressed == 0


def test_keys_are_independent_and_bounded() -> None:
    clock = FakeClock()
    limiter = LogLimiter(logging.getLogger("kf.test.limit2"), interval=10.0, clock=clock, max_keys=4)
    assert all(limiter.warning(f"k{i}", "event %s", i) for i in range(100))  # each new key logs once
    assert len(limiter._last) == 4
