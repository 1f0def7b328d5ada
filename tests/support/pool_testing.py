"""Helpers of the warm-pool tests of every engine (tests/e2e, tests/ssh, tests/docker): the running loop's pool, waits
on its change notifications and on a process's pidfd, never a sleep."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous.client import AsyncKernelClient
from kf_testing import execute, interrupt_busy_cell, manager

from kernelfleet.provisioners.pool import WarmPool, pools

WAIT = 90.0


def the_pool() -> WarmPool:
    """The test's only pool."""
    (pool,) = pools()
    return pool


async def full(pool: WarmPool, within: float = WAIT) -> None:
    """Until every standby of ``pool`` is registered and idle."""
    await asyncio.wait_for(pool.until(lambda p: len(p.idle) == p.settings.size), within)


async def warmed(kernels_dir: Path, name: str, within: float = WAIT) -> WarmPool:
    """The first start of a kernelspec creates its pool (that start is cold); the pool once it is full."""
    warmup = manager(kernels_dir, name)
    await warmup.start_kernel()
    await warmup.shutdown_kernel(now=True)
    pool = the_pool()
    await full(pool, within)
    return pool


async def pid_exited(pid: int, within: float = WAIT) -> None:
    """Until process ``pid`` of this machine has exited, on its pidfd (no polling)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(None))
    try:
        await asyncio.wait_for(done, within)
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def runs_as_its_kernel(km: AsyncKernelManager, client: AsyncKernelClient) -> None:
    """A claimed standby runs code as the kernel it was claimed for: its kernel id, neither the standby's id nor the
    launch token in its environment, and an interrupt ends a busy cell and not the kernel."""
    assert (await execute(client, "1+1"))["result"] == "2"
    env = await execute(client, "import os; (os.environ.get('KERNEL_ID'), 'KF_STANDBY_ID' in os.environ, "
                                "'LAUNCH_TOKEN' in os.environ)")
    assert env["result"] == repr((km.kernel_id, False, False))
    await interrupt_busy_cell(km, client)
    after = await execute(client, "6*7")
    assert after["result"] == "42", after
