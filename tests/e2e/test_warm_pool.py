"""Warm pools on the embedded default (distributed-provisioner, localhost): real standby launchers, the real broker,
jupyter_client's AsyncKernelManager. Every wait is on an event (the pool's own change notifications, a cell's
output, a process's exit), never a sleep."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.provisioning import KernelProvisionerFactory
from kf_testing import connect, execute, interrupt_busy_cell, manager
from pool_testing import full, pid_exited, the_pool, warmed

from kernelfleet.protocol.contract import STANDBY_ID
from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.leases import close_all
from kernelfleet.provisioners.pool import pools
from kernelfleet.provisioners.server_identity import LOCAL_LAUNCH_ENV, SERVER_ID_ENV, STANDBY_PARENT_ENV
from kernelfleet.provisioners.sweep import local_processes

WAIT = 60.0


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def environ_of(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


def standby_processes(pool_id: str) -> list[int]:
    """Live processes started as standbys of ``pool_id`` (their environment says so)."""
    marker = f"KF_STANDBY_POOL={pool_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in environ_of(int(entry.name)) and alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture(autouse=True)
async def closed_pools() -> AsyncIterator[None]:
    """Each test ends with its pools and broker closed, and no standby left running."""
    yield
    ids = [pool.pool_id for pool in pools()]
    await close_all()
    for pool_id in ids:
        assert standby_processes(pool_id) == [], f"standbys of pool {pool_id} outlived their pool"


@pytest.fixture
def pooled_spec(make_kernelspec: Callable[..., str]) -> Callable[..., str]:
    def make(name: str = "kf_pooled", **config: object) -> str:
        return make_kernelspec(name, config={"warm_pool_size": 2, **config})

    return make


async def start_pooled(kernels_dir: Path, name: str, **kwargs: object) -> AsyncKernelManager:
    await warmed(kernels_dir, name)
    km = manager(kernels_dir, name)
    await km.start_kernel(**kwargs)
    return km


async def test_pooled_kernel_lifecycle(kernels_dir: Path, pooled_spec: Callable[..., str]) -> None:
    km = await start_pooled(kernels_dir, pooled_spec())
    pool = the_pool()
    assert pool.stats["claimed"] == 1, pool.stats
    launcher_pid = km.provisioner.local_process.pid
    client = await connect(km)
    assert (await execute(client, "1+1"))["result"] == "2"
    env = await execute(client, "import os; (os.environ.get('KERNEL_ID'), 'KF_STANDBY_ID' in os.environ, "
                                "'LAUNCH_TOKEN' in os.environ)")
    assert env["result"] == repr((km.kernel_id, False, False))
    kernel_pid = int((await execute(client, "os.getpid()"))["result"])

    await interrupt_busy_cell(km, client)
    assert (await execute(client, "6*7"))["result"] == "42"

    # the claimed launcher is found like a cold one: KERNEL_ID in its (supervisor's) environment, so the orphan sweep
    # lists it under its kernel id; the pool's idle standbys belong to this running server and are not listed
    assert f"KERNEL_ID={km.kernel_id}".encode() in environ_of(launcher_pid)
    swept = {o.kernel_id: o.object_id for o in await local_processes.find(km.provisioner.server_id)}
    assert swept.get(km.kernel_id) == str(launcher_pid)
    assert not set(swept) & {link.standby_id for link in pool.idle}

    await km.restart_kernel()
    client.stop_channels()
    await pid_exited(launcher_pid)
    await pid_exited(kernel_pid)
    client = await connect(km)
    assert (await execute(client, "'x' in globals()"))["result"] == "False"
    new_launcher = km.provisioner.local_process.pid
    client.stop_channels()
    await km.shutdown_kernel()
    await pid_exited(new_launcher)
    assert pool.stats["lost"] == 0 and pool.stats["failed"] == 0, pool.stats


async def test_claimed_standby_never_returns_and_the_pool_refills(kernels_dir: Path,
                                                                  pooled_spec: Callable[..., str]) -> None:
    name = pooled_spec()
    km = await start_pooled(kernels_dir, name)
    pool = the_pool()
    claimed_pid = km.provisioner.local_process.pid
    await full(pool)  # refilled in the background
    assert claimed_pid not in [link.handle.pid for link in pool.idle]
    assert pool.stats["registered"] == 3
    await km.shutdown_kernel(now=True)
    await pid_exited(claimed_pid)
    assert claimed_pid not in [link.handle.pid for link in pool.idle]


async def test_reattach_of_a_pooled_kernel(kernels_dir: Path, pooled_spec: Callable[..., str]) -> None:
    name = pooled_spec()
    km = await start_pooled(kernels_dir, name)
    info = await km.provisioner.get_provisioner_info()
    launcher_pid = km.provisioner.local_process.pid
    assert info["remote_pid"] == launcher_pid
    km.provisioner.local_process = None
    km2 = AsyncKernelManager(kernel_id=km.kernel_id, kernel_name=name,
                             kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]))
    km2.provisioner = KernelProvisionerFactory.instance(parent=km2.parent).create_provisioner_instance(
        km.kernel_id, km2.kernel_spec, parent=km2)
    await km2.provisioner.load_provisioner_info(info)
    km2.load_connection_info(info["connection_info"])
    assert await km2.is_alive()
    client = await connect(km2)
    assert (await execute(client, "1+1"))["result"] == "2"
    client.stop_channels()
    await km2.shutdown_kernel()
    await pid_exited(launcher_pid)


async def test_request_env_and_working_dir_reach_the_pooled_kernel(
    kernels_dir: Path, pooled_spec: Callable[..., str], tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    km = await start_pooled(kernels_dir, pooled_spec(), env={**os.environ, "KERNEL_TEAM": "blue"}, cwd=str(workdir))
    assert the_pool().stats["claimed"] == 1
    client = await connect(km)
    reply = await execute(client, "import os; (os.environ.get('KERNEL_TEAM'), os.getcwd())")
    assert reply["result"] == repr(("blue", str(workdir)))
    client.stop_channels()
    await km.shutdown_kernel(now=True)


async def test_operator_only_request_names_are_refused_before_any_claim(
    kernels_dir: Path, pooled_spec: Callable[..., str]
) -> None:
    name = pooled_spec()
    pool = await warmed(kernels_dir, name)
    km = manager(kernels_dir, name)
    with pytest.raises(Exception, match="KERNEL_PYTHON"):
        await km.start_kernel(env={**os.environ, "KERNEL_PYTHON": "/bin/sh"})
    assert pool.stats["claimed"] == 0 and len(pool.idle) == 2  # the same allow-list as cold, before the pool


async def test_empty_pool_falls_back_to_a_cold_launch(kernels_dir: Path, pooled_spec: Callable[..., str]) -> None:
    km = manager(kernels_dir, pooled_spec())
    await km.start_kernel()  # the pool is only being created: this start is cold
    pool = the_pool()
    assert pool.stats["empty"] == 1 and pool.stats["claimed"] == 0
    client = await connect(km)
    assert (await execute(client, "1+1"))["result"] == "2"
    client.stop_channels()
    await km.shutdown_kernel(now=True)


async def test_a_dead_standby_is_replaced(kernels_dir: Path, pooled_spec: Callable[..., str]) -> None:
    name = pooled_spec()
    pool = await warmed(kernels_dir, name)
    victim = pool.idle[0].handle.pid
    os.killpg(victim, signal.SIGKILL)
    await asyncio.wait_for(pool.until(lambda p: p.stats["lost"] == 1), WAIT)
    await full(pool)
    assert victim not in [link.handle.pid for link in pool.idle]
    km = manager(kernels_dir, name)
    await km.start_kernel()
    assert pool.stats["claimed"] == 1
    await km.shutdown_kernel(now=True)


async def test_idle_standbys_are_culled(kernels_dir: Path, pooled_spec: Callable[..., str]) -> None:
    name = pooled_spec(warm_pool_idle_ttl=1.0)
    warmup = manager(kernels_dir, name)
    await warmup.start_kernel()
    await warmup.shutdown_kernel(now=True)
    pool = the_pool()
    await asyncio.wait_for(pool.until(lambda p: p.stats["culled"] == 2), WAIT)
    await pool.settled()
    assert not pool.idle and pool.starting == 0  # no refill until a launch wants the pool again
    assert standby_processes(pool.pool_id) == []


async def test_sweep_takes_standbys_only_once_their_server_is_gone(tmp_path: Path) -> None:
    """A standby whose parent is still the server that started it is that server's; once reparented (the server
    died) it is an orphan under its standby id. Real processes, read from /proc by the sweep itself."""
    server_id = "sweep-test-server"
    env = {**os.environ, SERVER_ID_ENV: server_id, LOCAL_LAUNCH_ENV: "1", STANDBY_ID: "standby-owned",
           STANDBY_PARENT_ENV: str(os.getpid())}
    env.pop("KERNEL_ID", None)
    idle = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    owned = await asyncio.create_subprocess_exec(*idle, env=env, stdin=asyncio.subprocess.PIPE,
                                                 start_new_session=True)
    orphan_env = dict(env, **{STANDBY_ID: "standby-orphan", STANDBY_PARENT_ENV: "1"})
    orphan = await asyncio.create_subprocess_exec(*idle, env=orphan_env, stdin=asyncio.subprocess.PIPE,
                                                  start_new_session=True)
    try:
        found = await local_processes.find(server_id)
        assert [o.kernel_id for o in found] == ["standby-orphan"]
        removals = await local_processes.remove(found)
        assert [r.outcome.name for r in removals] == ["REMOVED"]
        assert await asyncio.wait_for(orphan.wait(), WAIT) == -9
        assert owned.returncode is None
    finally:
        for process in (owned, orphan):
            if process.returncode is None:
                process.kill()
            await process.wait()


async def test_a_standby_that_cannot_start_is_counted_logged_and_retried(
    kernels_dir: Path, make_kernelspec: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    """A kernelspec whose launcher cannot start: the (cold) launch fails with the launcher's own error, and the pool
    counts each failed standby with the engine's reason and tries again after its back-off (not at once)."""
    name = make_kernelspec("kf_broken", config={"warm_pool_size": 1}, env={"LOG_LEVEL": "LOUD"})
    km = manager(kernels_dir, name)
    with pytest.raises(LaunchError, match="LOG_LEVEL must be a level name"):
        await km.start_kernel()
    pool = the_pool()
    await asyncio.wait_for(pool.until(lambda p: p.stats["failed"] == 2), WAIT)  # the first try, then the retry
    assert pool.stats["registered"] == 0 and not pool.idle
    failures = [r.getMessage() for r in caplog.records if "failed on local" in r.getMessage()]
    assert "LOG_LEVEL must be a level name" in failures[0] and "trying again in 1s" in failures[0]
    assert "trying again in 2s" in failures[1]
