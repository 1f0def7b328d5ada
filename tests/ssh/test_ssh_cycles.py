"""Many starts and shutdowns leave nothing behind on the hosts: no launcher, kernel, shell or log file."""

from __future__ import annotations

import asyncio
import glob
from collections.abc import Callable
from pathlib import Path

from jupyter_client import AsyncKernelManager
from ssh_testing import processes_with_env, wait_until
from sshd import SshCluster

from kernelfleet.provisioners.ssh.connections import connection_pool

CYCLES = 20
AT_ONCE = 4


async def test_no_leftover_remote_processes_after_20_cycles(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager], ssh_cluster: SshCluster,
    remote_log_dir: Path,
) -> None:
    name = ssh_spec(remote_hosts=ssh_cluster.addresses)
    kernel_ids: list[str] = []

    async def cycle() -> None:
        km = kernel_manager(name)
        await km.start_kernel()
        kernel_ids.append(km.kernel_id)
        await km.shutdown_kernel()

    for _ in range(CYCLES // AT_ONCE):
        await asyncio.gather(*(cycle() for _ in range(AT_ONCE)))
    assert len(kernel_ids) == CYCLES

    def nothing_left() -> bool:
        return all(processes_with_env("KERNEL_ID", kid) == [] for kid in kernel_ids)

    await wait_until(nothing_left, 10, "processes of stopped kernels are still running")
    assert [p for kid in kernel_ids for p in glob.glob(f"{remote_log_dir}/kernelfleet-{kid}-*")] == []
    pool = connection_pool()
    assert len(pool._connections) <= len(ssh_cluster.hosts)  # one shared connection per host, at most
