"""No port race over SSH: 50 kernels started at once on the test hosts (127.0.0.2-4, one network
namespace, so they compete with each other exactly as kernels on one real host do) while a neighbour
process keeps grabbing ephemeral ports; every kernel comes up and executes. See tests/e2e/test_port_race.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from bench.port_contention import port_hungry_neighbour, start_many, summary
from jupyter_client import AsyncKernelManager

KERNELS = 50
LAUNCH_TIMEOUT = 600  # bounds a wait: 50 kernels boot at once on a shared 2-core host
READY_TIMEOUT = 600.0

pytestmark = pytest.mark.timeout(1800)


async def test_fifty_ssh_kernels_at_once_beside_a_port_hungry_neighbour(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager]
) -> None:
    name = ssh_spec("race", launch_timeout=LAUNCH_TIMEOUT, ssh_connect_timeout=LAUNCH_TIMEOUT)
    async with port_hungry_neighbour():
        outcomes = await start_many(lambda _: kernel_manager(name), KERNELS, READY_TIMEOUT)
    assert all(o.ok for o in outcomes), summary(outcomes)
