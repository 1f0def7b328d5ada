"""Signals through the embedded default (distributed-provisioner on localhost, the real launcher): SIGINT, SIGTERM
and SIGKILL reach the kernel through the authenticated comm port; any other signal number, which Gateway
Provisioners passed to its launcher as a raw number, is not delivered, and the server's log says so, naming what
does the job instead. The kernel is unharmed by the refusal."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from kf_testing import connect, execute, interrupt_busy_cell, manager

pytestmark = pytest.mark.timeout(90)


async def test_a_signal_the_protocol_does_not_carry_is_refused_by_name(
    kernels_dir: Path, make_kernelspec: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    km = manager(kernels_dir, make_kernelspec())
    await km.start_kernel()
    client = await connect(km)
    try:
        # The kernel would die of SIGUSR1 (Python's default action): it did not get it.
        with caplog.at_level(logging.WARNING):
            await km.signal_kernel(signal.SIGUSR1)
        messages = [r.getMessage() for r in caplog.records if "is not carried" in r.getMessage()]
        assert messages == [f"Kernel {km.kernel_id}: SIGUSR1 ({int(signal.SIGUSR1)}) is not carried by the launch "
                            "protocol and was not delivered: the kernel's launcher takes interrupt (SIGINT), "
                            "terminate (SIGTERM) and kill (SIGKILL) only. To send the kernel's own process another "
                            "signal, run os.kill(os.getpid(), signal.SIGUSR1) in the kernel"]
        assert (await execute(client, "6*7"))["result"] == "42"
        await interrupt_busy_cell(km, client)  # SIGINT still is an interrupt
        assert await km.is_alive()
    finally:
        client.stop_channels()
        await km.shutdown_kernel(now=True)
