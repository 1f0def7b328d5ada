"""Warm pools of R standbys on the embedded default (distributed-provisioner, localhost): the pure-R launcher in
standby mode (launchers/r/kf_standby.R), the real broker, a real IRkernel, jupyter_client's AsyncKernelManager.

A standby has done R's start-up and IRkernel's loading before any kernel asks; a claimed one becomes that kernel in
its own process, with the request's environment and working directory. Every wait is on an event (the pool's change
notifications, a cell's output, a process's exit), never a sleep. Generous deadlines: R on a loaded host is slow.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from death_testing import reloaded
from jupyter_client import AsyncKernelManager
from kf_testing import manager
from pool_testing import (
    close_pools_leaving_no_standby,
    environ_of,
    exited,
    full,
    listening_sockets,
    standby_processes,
    the_pool,
    warmed,
)
from rs_testing import SAY_STARTED_R, connect, execute, execute_settled, interrupt, require_r

from kernelfleet.provisioners.pool import WarmPool
from kernelfleet.provisioners.sessions.store import KernelSession
from kernelfleet.provisioners.sweep import local_processes

REPO = Path(__file__).resolve().parents[2]
R_LAUNCHER = REPO / "launchers" / "r" / "launch_IRkernel.R"
READY = 90.0
FILL = 120.0

pytestmark = pytest.mark.timeout(400)

# What a cell shows of the kernel's own process: its environment, working directory and search path (after a
# collection: IRkernel's Executor finalizer detaches one of the two environments each kernel attaches).
INSPECT = ('invisible(gc()); cat(Sys.getenv(c("KERNEL_ID", "KERNEL_TEAM", "KF_STANDBY_ID", "KF_STANDBY_POOL", '
           '"LAUNCH_TOKEN")), getwd(), search(), sep = "\\n")')


@pytest.fixture(autouse=True)
async def closed_pools() -> AsyncIterator[None]:
    """Each test ends with its pools and broker closed, and no standby (or forked listener) left running."""
    yield
    await close_pools_leaving_no_standby()


@pytest.fixture
def r_spec(make_kernelspec: Callable[..., str]) -> str:
    rscript = require_r()
    argv = [rscript, str(R_LAUNCHER), "--kernel-id", "{kernel_id}", "--port-range", "{port_range}",
            "--response-address", "{response_address}", "--public-key", "{public_key}"]
    return make_kernelspec("kf_r_pooled", argv=argv, language="R", config={"warm_pool_size": 1})


async def inspect(km: AsyncKernelManager) -> list[str]:
    client = await connect(km, READY)
    try:
        reply = await execute(client, INSPECT)
        assert reply["status"] == "ok", reply
        return reply["stdout"].split("\n")
    finally:
        client.stop_channels()


async def filled(kernels_dir: Path, name: str) -> tuple[WarmPool, list[str]]:
    """The pool once full, and what a cold kernel of the same kernelspec shows (INSPECT) for comparison."""
    cold = manager(kernels_dir, name)
    await cold.start_kernel()
    assert the_pool().stats["claimed"] == 0  # the first start creates the pool and goes cold
    seen = await inspect(cold)
    await cold.shutdown_kernel(now=True)
    pool = the_pool()
    await full(pool, FILL)
    return pool, seen


async def test_pooled_r_kernel_lifecycle(kernels_dir: Path, r_spec: str, tmp_path: Path) -> None:
    pool, cold_view = await filled(kernels_dir, r_spec)
    (standby,) = pool.idle
    workdir = tmp_path / "work"
    workdir.mkdir()
    km = manager(kernels_dir, r_spec)
    await km.start_kernel(env={**os.environ, "KERNEL_TEAM": "blue"}, cwd=str(workdir))
    assert pool.stats["claimed"] == 1, pool.stats
    pid = km.provisioner.local_process.pid
    assert pid == standby.handle.pid  # the warmed process itself became the kernel

    # the claim's environment and working directory, none of the standby's variables or token; the search path
    # equals a cold kernel's (the warm-up kernel's attachments are gone)
    view = await inspect(km)
    assert view[:6] == [km.kernel_id, "blue", "", "", "", str(workdir)], view
    assert view[6:] == cold_view[6:]

    client = await connect(km, READY)
    assert (await execute(client, "1+1"))["result"] == "[1] 2"
    reply = await interrupt(km, client, SAY_STARTED_R + "Sys.sleep(600)")
    assert reply["status"] in ("abort", "aborted", "error"), reply
    assert (await execute_settled(client, "x <- 6*7; x"))["result"] == "[1] 42"

    await km.restart_kernel()  # a restart claims a fresh standby (or goes cold), never this one again
    client.stop_channels()
    await exited(pid)
    client = await connect(km, READY)
    assert (await execute(client, "exists('x')"))["result"] == "[1] FALSE"
    new_pid = km.provisioner.local_process.pid
    assert new_pid != pid
    client.stop_channels()
    await km.shutdown_kernel()
    await exited(new_pid)
    assert pool.stats["failed"] == 0 and pool.stats["lost"] == 0, pool.stats
    assert [p for p in standby_processes(pool.pool_id) if p in (pid, new_pid)] == []


async def test_pool_of_r_standbys_refills_and_culls(kernels_dir: Path, r_spec: str) -> None:
    """An idle R standby listens on no port; a claimed one is replaced in the background; a standby killed while
    idle is replaced too."""
    pool = await warmed(kernels_dir, r_spec, FILL)
    (idle,) = pool.idle
    assert listening_sockets(idle.handle.pid) == []  # registered and warm, but no port until it is claimed
    km = manager(kernels_dir, r_spec)
    await km.start_kernel()
    claimed = km.provisioner.local_process.pid
    assert len(listening_sockets(claimed)) >= 5  # now a kernel: its five ZMQ ports
    await full(pool, FILL)
    assert claimed not in [link.handle.pid for link in pool.idle]
    (victim,) = pool.idle
    os.killpg(victim.handle.pid, 9)
    await asyncio.wait_for(pool.until(lambda p: p.stats["lost"] == 1), FILL)
    await full(pool, FILL)
    await km.shutdown_kernel(now=True)
    await exited(claimed)


async def test_reattach_of_a_pooled_r_kernel(kernels_dir: Path, r_spec: str) -> None:
    """The R kernel keeps its standby's environment (R cannot exec itself warm): its provisioner info records the
    standby id, by which a restarted server adopts it, stops it, and the orphan sweep leaves it to its session."""
    await warmed(kernels_dir, r_spec, FILL)
    km = manager(kernels_dir, r_spec)
    await km.start_kernel()
    info = await km.provisioner.get_provisioner_info()
    pid = km.provisioner.local_process.pid
    assert info["remote_pid"] == pid and info["standby_id"], info
    assert f"KF_STANDBY_ID={info['standby_id']}".encode() in environ_of(pid)
    session = KernelSession(km.kernel_id, r_spec, "distributed-provisioner", info["connection_info"], info)
    assert session.claimed_ids() == [km.kernel_id, info["standby_id"]]
    swept = await local_processes.find(km.provisioner.server_id)  # this server's own kernel: no orphan
    assert str(pid) not in [o.object_id for o in swept]

    again = await reloaded(km)  # as a restarted server would take over: only the saved info
    assert again.local_process.pid == pid and await again.poll() is None
    client = await connect(km, READY)
    assert (await execute(client, "1+1"))["result"] == "[1] 2"
    client.stop_channels()
    km.provisioner.local_process = None  # the first server has let go; the second one stops the kernel
    await again.kill()
    await again.cleanup(restart=False)
    await exited(pid)
