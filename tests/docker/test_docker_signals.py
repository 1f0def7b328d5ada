"""Signals other than SIGINT/SIGTERM/SIGKILL for kernels in containers (docker-provisioner and
docker-swarm-provisioner, the real kernel image): the launcher inside the container carries protocol 2.2's
``signal`` op, so a handler a cell installed runs on SIGUSR1 and says so on iopub; a signal outside the list is
refused by the server with the kernel's id, and the container is gone afterwards as usual. Run with an image built
from this tree (``KF_IMAGE_TAG=<tag> tools/build-images``, ``KF_TEST_IMAGE=kernelfleet/kernel-py:<tag>``)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from kf_docker import leftovers
from kf_testing import check_signals, connect, manager

pytestmark = pytest.mark.timeout(180)


async def test_a_signal_reaches_the_handler_of_a_kernel_in_a_container(
    provisioner: str, docker_spec: Callable[..., str], kernels_dir: Path
) -> None:
    km = manager(kernels_dir, docker_spec(provisioner))
    await km.start_kernel()
    try:
        client = await connect(km)
        try:
            await check_signals(km, client, signal.SIGUSR1, signal.SIGSEGV)
        finally:
            client.stop_channels()
    finally:
        await km.shutdown_kernel()
    assert await leftovers(km.kernel_id) == []
