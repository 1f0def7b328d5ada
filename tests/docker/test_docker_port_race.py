"""No port race between host-network containers: 20 kernel containers started at once share the
host's ports with each other and with a neighbour process that keeps grabbing ephemeral ports; every
kernel comes up and executes. The launcher is the one inside the image (KF_TEST_IMAGE). See
tests/e2e/test_port_race.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from bench.port_contention import port_hungry_neighbour, start_many, summary
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager

KERNELS = 20
LAUNCH_TIMEOUT = 600  # bounds a wait: 20 containers boot at once on a shared 2-core host
READY_TIMEOUT = 600.0

pytestmark = pytest.mark.timeout(1800)


async def test_twenty_host_network_containers_at_once_beside_a_port_hungry_neighbour(
    kernels_dir: Path, docker_spec: Callable[..., str]
) -> None:
    name = docker_spec("docker-provisioner", "race", launch_timeout=LAUNCH_TIMEOUT)
    specs = KernelSpecManager(kernel_dirs=[str(kernels_dir)])

    def manager(index: int) -> AsyncKernelManager:
        return AsyncKernelManager(kernel_name=name, kernel_spec_manager=specs)

    async with port_hungry_neighbour():
        outcomes = await start_many(manager, KERNELS, READY_TIMEOUT)
    assert all(o.ok for o in outcomes), summary(outcomes)
