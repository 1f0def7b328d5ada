"""Death of a kernel on an SSH host: ``kill -9`` of the kernel or of its launcher is reported by ``poll()`` (the
host's own word), jupyter_client's restarter restarts the kernel, and a host that cannot be reached at all is
never taken for a dead kernel: only proof of death counts."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from death_testing import detection_time, figure, kill9, reloaded, restarted_after, restarting_manager
from jupyter_client import AsyncKernelManager
from kf_testing import connect, execute
from ssh_testing import processes_with_env, wait_until
from sshd import SshCluster

ENGINE = "ssh"
HOST = "127.0.0.3"


@pytest.mark.parametrize("victim", ["kernel", "launcher"])
async def test_kill9_is_reported_by_poll(ssh_spec: Callable[..., str],
                                         kernel_manager: Callable[..., AsyncKernelManager], victim: str,
                                         request: pytest.FixtureRequest) -> None:
    km = kernel_manager(ssh_spec(remote_hosts=[HOST]))
    await km.start_kernel()
    try:
        prov = km.provisioner
        assert prov.is_remote and await prov.poll() is None
        pid = prov.kernel_pgid if victim == "kernel" else prov.launcher_pid
        elapsed = await detection_time(prov, kill9(pid))
        figure(request, ENGINE, f"kill -9 {victim}", elapsed)
        assert not await km.is_alive()
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
    assert not processes_with_env("KERNEL_ID", str(km.kernel_id))


async def test_restarter_restarts_a_killed_kernel(ssh_spec: Callable[..., str], kernels_dir: Path,
                                                  request: pytest.FixtureRequest) -> None:
    km = restarting_manager(kernels_dir, ssh_spec(remote_hosts=[HOST]))
    await km.start_kernel()
    try:
        first = km.provisioner.launcher_pid
        elapsed = await restarted_after(km, kill9(km.provisioner.kernel_pgid))
        figure(request, ENGINE, "kill -9 kernel", elapsed, metric="restart_s")
        assert km.provisioner.launcher_pid != first and km.provisioner.assigned_host == HOST
    finally:
        km.stop_restarter()
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
    assert not processes_with_env("KERNEL_ID", str(km.kernel_id))


async def test_unreachable_host_is_not_a_dead_kernel(ssh_spec: Callable[..., str], kernels_dir: Path,
                                                     ssh_cluster: SshCluster) -> None:
    """The host's sshd is down and the launcher does not answer (stopped): nothing proves the kernel died, so
    ``poll()`` keeps saying "running" and the restarter leaves it alone; once the host is back, it runs code."""
    km = restarting_manager(kernels_dir, ssh_spec(remote_hosts=[HOST], comm_timeout=1.0, ssh_connect_timeout=2.0))
    await km.start_kernel()
    host = ssh_cluster.host(HOST)
    launcher = km.provisioner.launcher_pid
    stopped = False
    try:
        client = await connect(km)
        assert (await execute(client, "kept = 'state'\nkept"))["result"] == "'state'"
        km.start_restarter()
        os.kill(launcher, signal.SIGSTOP)
        stopped = True
        host.stop()
        started = time.perf_counter()
        # poll() answers within its short wait while the check (comm timeout, failed SSH connection) goes on; for
        # 3 s the restarter (1 s period) polls too, and nobody may call the kernel dead.
        while time.perf_counter() - started < 3.0:
            assert await km.provisioner.poll() is None
        assert km.restarts.empty(), "the restarter restarted a kernel whose host was only unreachable"
        os.kill(launcher, signal.SIGCONT)
        stopped = False
        host.start()
        assert await km.provisioner.poll() is None
        assert (await execute(client, "kept"))["result"] == "'state'"
        client.stop_channels()
        assert km.restarts.empty()
    finally:
        if stopped:
            os.kill(launcher, signal.SIGCONT)
        host.start()
        km.stop_restarter()
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
    await wait_until(lambda: not processes_with_env("KERNEL_ID", str(km.kernel_id)), 10, "the kernel was left")


async def test_reattached_remote_kernel_death_is_reported(ssh_spec: Callable[..., str],
                                                         kernel_manager: Callable[..., AsyncKernelManager],
                                                         request: pytest.FixtureRequest) -> None:
    """After ``load_provisioner_info`` (a new server), ``poll()`` and ``wait()`` follow the host's word."""
    km = kernel_manager(ssh_spec(remote_hosts=[HOST]))
    await km.start_kernel()
    try:
        fresh = await reloaded(km)
        try:
            assert fresh.is_remote and await fresh.poll() is None
            elapsed = await detection_time(fresh, kill9(fresh.launcher_pid))
            figure(request, ENGINE, "kill -9 launcher (reattached)", elapsed)
        finally:
            await fresh.detach()
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
    assert not processes_with_env("KERNEL_ID", str(km.kernel_id))
