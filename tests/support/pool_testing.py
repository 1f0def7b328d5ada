"""What the warm-pool tests of every engine share: finding a local pool's standby processes in /proc, waiting for
processes and for a full pool on events (pidfds, the pool's own change notifications), never on sleeps, a pooled start
(the kernelspec's first start is cold and makes the pool), and what a claimed kernel must do. Used by the pool tests of
the embedded default (tests/e2e/test_warm_pool*.py), SSH hosts (tests/ssh), Docker and Swarm
(tests/docker/test_*warm_pool*.py) and Kubernetes (tests/k8s)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous.client import AsyncKernelClient
from kf_docker import docker_cli
from kf_testing import execute, interrupt_busy_cell, manager, process_exited

from kernelfleet.provisioners.leases import close_all
from kernelfleet.provisioners.pool import WarmPool, pools

WAIT = 120.0


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def environ_of(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


def standby_processes(pool_id: str) -> list[int]:
    """Live processes started as standbys of ``pool_id`` (their environment says so), and their forked children."""
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


async def exited(pid: int, within: float = WAIT) -> None:
    """Wait for ``pid`` to exit, on its pidfd (no polling)."""
    await process_exited(pid, within)


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


async def start_pooled(kernels_dir: Path, name: str, **kwargs: Any) -> AsyncKernelManager:
    """The first start of the kernelspec is cold and creates its pool; the next one, once it is full, is pooled."""
    pool = await warmed(kernels_dir, name)
    km = manager(kernels_dir, name)
    await km.start_kernel(**kwargs)
    assert pool.stats["claimed"] == 1, pool.stats
    return km


async def close_pools_leaving_no_standby() -> None:
    """Close every pool (and the broker); fails naming the pool when any of its standbys outlived it."""
    ids = [pool.pool_id for pool in pools()]
    await close_all()
    for pool_id in ids:
        left = {pid: describe(pid) for pid in standby_processes(pool_id)}
        assert not left, f"standbys of pool {pool_id} outlived their pool: {left}"


def describe(pid: int) -> str:
    """A process for a failure message: its state, parent and command line."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    return f"state {fields[0]}, parent {fields[1]}: " + " ".join(w.decode(errors="replace") for w in words[:4])


async def containers_of_pool(pool_id: str) -> list[str]:
    """Docker containers (any state) of warm pool ``pool_id``, by its label."""
    from kernelfleet.provisioners.pool.spec import LABEL_POOL

    return (await docker_cli("ps", "-aq", "--no-trunc", "--filter", f"label={LABEL_POOL}={pool_id}")).split()


async def inspect_container(container: str) -> dict[str, object] | None:
    """``docker inspect`` of ``container``; None when it does not exist."""
    found = json.loads(await docker_cli("inspect", container, check=False) or "[]")
    return found[0] if found else None


async def close_pools_leaving_no_container() -> None:
    """Close every pool; fails naming the pool when any of its containers (idle or claimed) is left on Docker."""
    ids = [pool.pool_id for pool in pools()]
    await close_all()
    for pool_id in ids:
        assert await containers_of_pool(pool_id) == [], f"containers of pool {pool_id} outlived their pool"


def listening_sockets(pid: int) -> list[str]:
    """The TCP sockets process ``pid`` holds in state LISTEN (``/proc/net/tcp*`` rows of its socket inodes): what a
    standby must not have before its claim."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: TCP_LISTEN
                found.append(fields[1])
    return found


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
