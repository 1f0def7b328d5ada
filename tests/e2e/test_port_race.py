"""No port race on the embedded default: 50 kernels started at once on this host while a neighbour
process keeps grabbing ephemeral ports, and every one comes up and executes.

Before the fix the launcher chose ports by binding and releasing them and reported them before the
kernel had bound them; whatever the neighbour took in between killed the kernel with "Address already
in use" after the server had accepted its report (10-40% of the kernels here).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from bench.port_contention import port_hungry_neighbour, start_many, summary
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager

KERNELS = 50
# Generous: 50 ipykernels booting at once on a 2-core host shared with other jobs. These bound waits.
LAUNCH_TIMEOUT = 600
READY_TIMEOUT = 600.0

pytestmark = pytest.mark.timeout(1800)


async def test_fifty_kernels_at_once_beside_a_port_hungry_neighbour(
    kernels_dir: Path, make_kernelspec: Callable[..., str]
) -> None:
    name = make_kernelspec("race", config={"launch_timeout": LAUNCH_TIMEOUT})
    specs = KernelSpecManager(kernel_dirs=[str(kernels_dir)])

    def manager(index: int) -> AsyncKernelManager:
        return AsyncKernelManager(kernel_name=name, kernel_spec_manager=specs)

    async with port_hungry_neighbour():
        outcomes = await start_many(manager, KERNELS, READY_TIMEOUT)
    assert all(o.ok for o in outcomes), summary(outcomes)
