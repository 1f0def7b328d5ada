"""Warm pools on SSH hosts (distributed-provisioner over the test sshds on 127.0.0.2-4): real standby launchers
started through sshd, the real broker, jupyter_client's AsyncKernelManager. A claimed standby must be found, signalled,
reattached and swept exactly like a cold remote launcher. Waits are on events (the pool's change notifications, a
cell's output, a pidfd), never a sleep."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from death_testing import reloaded
from jupyter_client import AsyncKernelManager
from kf_testing import connect, execute, interrupt_busy_cell, manager
from pool_testing import exited, full, the_pool, warmed
from ssh_testing import cmdlines_containing, file_mode, gone, process_env, processes_with_env
from sshd import SshCluster

from kernelfleet.provisioners.leases import close_all
from kernelfleet.provisioners.pool import WarmPool, pools
from kernelfleet.provisioners.ssh.remote_standbys import RemoteStandby
from kernelfleet.provisioners.sweep import Orphan, SSHTarget
from kernelfleet.provisioners.sweep import remote_processes as remote_sweep

WAIT = 90.0
HOSTS = ["127.0.0.2", "127.0.0.3"]


def standby_processes(pool_id: str) -> list[int]:
    """Live processes started as standbys of ``pool_id``, wherever they run (their environment says so)."""
    return processes_with_env("KF_STANDBY_POOL", pool_id)


@pytest.fixture(autouse=True)
async def closed_pools() -> AsyncIterator[None]:
    """Each test ends with its pools closed, and no standby left on any host (the conftest then checks that
    nothing at all is left on them)."""
    yield
    ids = [pool.pool_id for pool in pools()]
    await close_all()
    for pool_id in ids:
        left = standby_processes(pool_id)
        for pid in left:
            await exited(pid, 20)
        assert [pid for pid in left if not gone(pid)] == [], f"standbys of pool {pool_id} outlived their pool"


@pytest.fixture
def pooled_spec(ssh_spec: Callable[..., str]) -> Callable[..., str]:
    def make(**config: object) -> str:
        return ssh_spec(**{"remote_hosts": HOSTS, "warm_pool_size": 2, **config})

    return make


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (every "host" is this machine)."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def idle_standbys(pool: WarmPool) -> list[RemoteStandby]:
    return [link.handle for link in pool.idle]


def target(km: AsyncKernelManager) -> SSHTarget:
    return SSHTarget(km.provisioner.assigned_host, km.provisioner.ssh_settings())


async def test_pooled_remote_kernel_lifecycle(kernels_dir: Path, pooled_spec: Callable[..., str]) -> None:
    name = pooled_spec()
    pool = await warmed(kernels_dir, name)
    assert sorted(s.host for s in idle_standbys(pool)) == HOSTS  # spread over the kernelspec's hosts
    for standby in idle_standbys(pool):
        env = process_env(standby.pid)
        assert env["SSH_CONNECTION"].split()[2] == standby.host  # started through that host's sshd
        assert "KERNEL_ID" not in env and env["KF_STANDBY_ID"] == standby.standby_id
    waiting = {s.pid: s for s in idle_standbys(pool)}

    km = manager(kernels_dir, name)
    await km.start_kernel(env={**os.environ, "KERNEL_TEAM": "blue"})
    prov = km.provisioner
    assert pool.stats["claimed"] == 1, pool.stats
    assert prov.launcher_pid in waiting and prov.assigned_host == waiting[prov.launcher_pid].host
    assert cmdlines_containing(prov.launch_env["LAUNCH_TOKEN"]) == []  # the claim's token: never on a command line
    # what identifies a cold remote kernel identifies this one: KERNEL_ID in its launcher's environment, its log
    # named after the kernel, its pid, group and host in the provisioner info
    assert process_env(prov.launcher_pid)["KERNEL_ID"] == km.kernel_id
    log_path = Path(prov.remote_log)
    assert log_path.name.startswith(f"kernelfleet-{km.kernel_id}-") and file_mode(log_path) == 0o600
    info = await prov.get_provisioner_info()
    assert (info["assigned_host"], info["launcher_pid"], info["kernel_pgid"]) == (
        prov.assigned_host, prov.launcher_pid, prov.kernel_pgid)

    client = await connect(km)
    assert (await execute(client, "1+1"))["result"] == "2"
    reply = await execute(client, "import os; (os.environ.get('KERNEL_ID'), os.environ.get('KERNEL_TEAM'), "
                                  "'LAUNCH_TOKEN' in os.environ, 'KF_STANDBY_ID' in os.environ)")
    assert reply["result"] == repr((km.kernel_id, "blue", False, False))
    kernel_pid = int((await execute(client, "os.getpid()"))["result"])
    assert kernel_pid == prov.kernel_pgid
    # the kernel's group (started before the claim) is owned through its launcher: the SSH signal fallback reaches it
    assert await prov.host_launcher.signal_groups("0", [prov.kernel_pgid]) == [str(prov.kernel_pgid)]

    await interrupt_busy_cell(km, client)
    assert (await execute(client, "6*7"))["result"] == "42"

    # the orphan sweep lists the claimed launcher under its kernel id; the pool's connected standbys are not listed
    await full(pool)
    swept = {o.kernel_id: o for o in await remote_sweep.find(prov.server_id, target(km))}
    assert swept[km.kernel_id].object_id == str(prov.launcher_pid)
    assert swept[km.kernel_id].log_path == str(log_path)
    assert not set(swept) & {link.standby_id for link in pool.idle}

    old = [prov.launcher_pid, kernel_pid]
    await km.restart_kernel()
    client.stop_channels()
    for pid in old:
        await exited(pid)
    assert file_mode(log_path) is None  # the claimed launch's log went with it, as a cold one's
    assert pool.stats["claimed"] == 2  # a restart claims a fresh standby
    client = await connect(km)
    assert (await execute(client, "'x' in globals()"))["result"] == "False"
    launcher = prov.launcher_pid
    client.stop_channels()
    await km.shutdown_kernel()
    await exited(launcher)
    assert processes_with_env("KERNEL_ID", km.kernel_id) == []
    assert pool.stats["lost"] == 0 and pool.stats["failed"] == 0, pool.stats


async def test_reattach_of_a_pooled_remote_kernel(kernels_dir: Path, pooled_spec: Callable[..., str]) -> None:
    name = pooled_spec()
    await warmed(kernels_dir, name)
    km = manager(kernels_dir, name)
    await km.start_kernel()
    assert the_pool().stats["claimed"] == 1
    launcher_pid, host = km.provisioner.launcher_pid, km.provisioner.assigned_host
    again = await reloaded(km)  # a restarted server's provisioner: only the saved provisioner info
    await km.provisioner.detach()  # the old server goes away without stopping its kernel
    km.provisioner = again
    assert (again.launcher_pid, again.assigned_host) == (launcher_pid, host)
    assert await km.is_alive()
    client = await connect(km)
    assert (await execute(client, "1+1"))["result"] == "2"
    client.stop_channels()
    await km.shutdown_kernel()
    await exited(launcher_pid)
    assert processes_with_env("KERNEL_ID", km.kernel_id) == []


async def test_a_killed_remote_standby_is_replaced(kernels_dir: Path, pooled_spec: Callable[..., str]) -> None:
    name = pooled_spec()
    pool = await warmed(kernels_dir, name)
    victim = idle_standbys(pool)[0]
    os.killpg(victim.pid, signal.SIGKILL)
    await asyncio.wait_for(pool.until(lambda p: p.stats["lost"] == 1), WAIT)
    await full(pool)
    assert victim.pid not in [s.pid for s in idle_standbys(pool)]
    assert sorted(s.host for s in idle_standbys(pool)) == HOSTS  # the replacement went where one was missing
    km = manager(kernels_dir, name)
    await km.start_kernel()
    assert pool.stats["claimed"] == 1
    client = await connect(km)
    assert (await execute(client, "1+1"))["result"] == "2"
    client.stop_channels()
    await km.shutdown_kernel(now=True)


async def test_standbys_of_a_dead_host_are_replaced_on_the_others(
    kernels_dir: Path, pooled_spec: Callable[..., str], ssh_cluster: SshCluster
) -> None:
    """A host dies (its sshd and everything it ran): its standbys' connections end, the pool replaces them on the
    hosts still up, and nothing of them is left when the host comes back."""
    name = pooled_spec()
    pool = await warmed(kernels_dir, name)
    dead = idle_standbys(pool)[0]
    host = ssh_cluster.host(dead.host)
    assert host.process is not None
    sessions = descendants(host.process.pid)  # its sshd's sessions: our SSH connection to it ends with them
    host.stop()
    for pid in sessions:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os.killpg(dead.pid, signal.SIGKILL)  # the host's power went: its processes with it
    await asyncio.wait_for(pool.until(lambda p: p.stats["lost"] == 1), WAIT)
    await full(pool)
    assert [s.host for s in idle_standbys(pool)] == [h for h in HOSTS if h != dead.host] * 2
    host.start()
    await pool.settled()
    await exited(dead.pid)
    km = manager(kernels_dir, name)
    await km.start_kernel()
    assert pool.stats["claimed"] == 1 and km.provisioner.assigned_host != dead.host
    await km.shutdown_kernel(now=True)


async def test_standbys_whose_server_is_gone_exit_or_are_swept(kernels_dir: Path,
                                                               pooled_spec: Callable[..., str]) -> None:
    """The server dies: its connections to the standbys end. A standby then exits by itself; one that cannot (it
    is stopped) no longer holds a connection, so the orphan sweep lists it under its standby id and removes it.
    While the server ran, the sweep listed none of them."""
    name = pooled_spec()
    pool = await warmed(kernels_dir, name)
    server_id = pool.engine.command.env["KF_SERVER_ID"]
    stuck, leaving = idle_standbys(pool)
    ours = {stuck.standby_id, leaving.standby_id}
    settings = pool.engine.settings

    async def swept(host: str) -> list[Orphan]:  # (other kernels of this machine's server id may be listed too)
        return [o for o in await remote_sweep.find(server_id, SSHTarget(host, settings)) if o.kernel_id in ours]

    for standby in (stuck, leaving):
        assert await swept(standby.host) == []
    os.kill(stuck.pid, signal.SIGSTOP)
    for link in list(pool.idle):
        link.drop()  # what the server's death does to its end: every connection closed, nothing stopped
    await exited(leaving.pid)
    orphans = await swept(stuck.host)
    assert [(o.kernel_id, o.object_id) for o in orphans] == [(stuck.standby_id, str(stuck.pid))]
    assert orphans[0].log_path == stuck.log_path
    removals = await remote_sweep.remove(orphans)
    assert [r.outcome.name for r in removals] == ["REMOVED"]
    await exited(stuck.pid)
    assert file_mode(Path(stuck.log_path)) is None
    assert standby_processes(pool.pool_id) == []
