"""Signals other than SIGINT/SIGTERM/SIGKILL for a kernel on a remote host (distributed-provisioner through the
tests' sshd): protocol 2.2's ``signal`` op reaches a handler a cell installed, whose output arrives on iopub, and a
signal outside the list is refused with the kernel's id, exactly as for a local kernel (tests/e2e/test_signals.py)."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from jupyter_client import AsyncKernelManager
from kf_testing import check_signals

pytestmark = pytest.mark.timeout(180)


async def test_a_signal_reaches_the_handler_of_a_remote_kernel(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager]
) -> None:
    km = kernel_manager(ssh_spec(remote_hosts=["127.0.0.3"]))
    await km.start_kernel()
    try:
        assert km.provisioner.assigned_host == "127.0.0.3"
        client = km.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            await check_signals(km, client, signal.SIGHUP, signal.SIGALRM)
        finally:
            client.stop_channels()
    finally:
        await km.shutdown_kernel()
