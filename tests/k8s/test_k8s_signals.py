"""Signals other than SIGINT/SIGTERM/SIGKILL for a kernel pod (kubernetes-provisioner on kubelite, the real kernel
image at its pod IP): protocol 2.2's ``signal`` op reaches a handler a cell installed, whose output arrives on iopub;
a signal outside the list is refused with the kernel's id; nothing of the kernel is left afterwards (the ``kube``
fixture's check). Run with an image built from this tree (``KF_TEST_IMAGE``, as for the Docker tests)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from kf_testing import check_signals, connect, manager

from kernelfleet.kubelite import KubeLite

pytestmark = pytest.mark.timeout(240)


async def test_a_signal_reaches_the_handler_of_a_kernel_pod(
    kube: KubeLite, kernels_dir: Path, k8s_spec: Callable[..., str]
) -> None:
    km = manager(kernels_dir, k8s_spec())
    await km.start_kernel()
    try:
        client = await connect(km)
        try:
            await check_signals(km, client, signal.SIGUSR1, signal.SIGPIPE)
        finally:
            client.stop_channels()
    finally:
        await km.shutdown_kernel()
