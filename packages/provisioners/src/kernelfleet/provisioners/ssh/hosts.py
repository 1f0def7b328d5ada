"""Which host runs the next kernel: round-robin or least-connection over a kernelspec's host list.

Gateway Provisioners kept this state in class-level dicts that were never initialised, so
least-connection crashed on its first launch. Here each distinct host list has one balancer object
per process; it counts the kernels placed on each host (a launch reserves its host before it
connects, so concurrent launches spread too) and is told when they are released.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

ALGORITHMS = ("round-robin", "least-connection")


class HostBalancer:
    """Host order for launches over one host list; not thread-safe, used from the event loop only."""

    def __init__(self, hosts: Sequence[str]) -> None:
        if not hosts:
            raise ValueError("a host list needs at least one host")
        self.hosts = tuple(hosts)
        self.kernels: Counter[str] = Counter()
        self._next = 0

    def candidates(self, algorithm: str) -> list[str]:
        """Every host, best first; the rest are the fallbacks when the first is down.

        Round-robin starts one further along on each call. Least-connection orders by kernels
        placed, ties broken in round-robin order so equal hosts still take turns.
        """
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown load-balancing algorithm {algorithm!r} (use one of {', '.join(ALGORITHMS)})")
        start = self._next % len(self.hosts)
        self._next += 1
        order = list(self.hosts[start:] + self.hosts[:start])
        if algorithm == "least-connection":
            order.sort(key=lambda host: self.kernels[host])
        return order

    def acquire(self, host: str) -> None:
        self.kernels[host] += 1

    def release(self, host: str) -> None:
        if self.kernels[host] > 0:
            self.kernels[host] -= 1


_balancers: dict[tuple[str, ...], HostBalancer] = {}


def balancer_for(hosts: Sequence[str]) -> HostBalancer:
    """The process's balancer for this exact host list (kernelspecs sharing a list share the counts)."""
    key = tuple(hosts)
    balancer = _balancers.get(key)
    if balancer is None:
        balancer = _balancers[key] = HostBalancer(key)
    return balancer
