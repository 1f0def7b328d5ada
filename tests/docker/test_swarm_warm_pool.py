"""Warm pools on Docker Swarm (``docker-swarm-provisioner``): real standby services of the image under test on the
one-node swarm, the real broker, jupyter_client's AsyncKernelManager. At the claim only the service-level labels change
(the task is not redeployed: checked here against Swarm itself); everything that finds a cold kernel's service (poll,
wait, reattach, the orphan sweep) finds it. Waits are on events: the pool's change notifications, a cell's output,
``docker wait`` on the task's container."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from death_testing import reloaded
from jupyter_client import AsyncKernelManager
from kf_docker import docker_cli
from kf_testing import connect, execute, manager
from pool_testing import full, runs_as_its_kernel, the_pool, warmed

from kernelfleet.provisioners.leases import close_all
from kernelfleet.provisioners.pool import pools
from kernelfleet.provisioners.pool.spec import LABEL_POOL, LABEL_STANDBY
from kernelfleet.provisioners.sweep import Orphan, remove_orphans
from kernelfleet.provisioners.sweep.docker_objects import find

WAIT = 120.0


async def of_pool(kind: str, pool_id: str) -> list[str]:
    """The ids of the pool's services or secrets (``kind``), claimed or not."""
    return (await docker_cli(kind, "ls", "-q", "--filter", f"label={LABEL_POOL}={pool_id}")).split()


async def tasks_of(service: str) -> list[dict[str, Any]]:
    ids = (await docker_cli("service", "ps", "-q", "--no-trunc", service)).split()
    return [json.loads(await docker_cli("inspect", task)) [0] for task in ids]


async def exists(*args: str) -> bool:
    return bool((await docker_cli(*args, check=False)).strip().strip("[]").strip())


@pytest.fixture(autouse=True)
async def closed_pools(loopback_broker: None, swarm_ready: None) -> AsyncIterator[None]:
    """Each test ends with its pools closed and none of their services or secrets left on the swarm."""
    yield
    ids = [pool.pool_id for pool in pools()]
    await close_all()
    for pool_id in ids:
        assert await of_pool("service", pool_id) == [], f"services of pool {pool_id} outlived their pool"
        assert await of_pool("secret", pool_id) == [], f"secrets of pool {pool_id} outlived their pool"


@pytest.fixture
def pooled_spec(docker_spec: Callable[..., str]) -> str:
    return docker_spec("docker-swarm-provisioner", "kf_swarm_pooled", warm_pool_size=2)


async def test_pooled_swarm_kernel_lifecycle(kernels_dir: Path, pooled_spec: str) -> None:
    pool = await warmed(kernels_dir, pooled_spec)
    before = {link.handle.service_id: await tasks_of(link.handle.service_id) for link in pool.idle}
    for service_id in before:
        labels = json.loads(await docker_cli("service", "inspect", service_id))[0]["Spec"]["Labels"]
        assert "kernel_id" not in labels and labels[LABEL_STANDBY].startswith("standby-")  # no kernel data

    km = manager(kernels_dir, pooled_spec)
    await km.start_kernel()
    prov = km.provisioner
    assert pool.stats["claimed"] == 1, pool.stats
    service = prov.service_id
    assert service in before
    spec = json.loads(await docker_cli("service", "inspect", service))[0]["Spec"]
    assert spec["Labels"]["kernel_id"] == km.kernel_id and spec["Labels"]["component"] == "kernel"
    secret = json.loads(await docker_cli("secret", "inspect", prov.secret_id))[0]["Spec"]
    assert secret["Labels"]["kernel_id"] == km.kernel_id
    # only the service's own labels changed: the same single task, never redeployed, its container still running
    (task,) = await tasks_of(service)
    (old,) = before[service]
    assert task["ID"] == old["ID"] and task["Status"]["State"] == "running"
    assert task["Status"]["ContainerStatus"]["ContainerID"] == old["Status"]["ContainerStatus"]["ContainerID"]
    assert "kernel_id" not in task["Spec"]["ContainerSpec"]["Labels"]

    client = await connect(km)
    await runs_as_its_kernel(km, client)

    # the sweep lists the claimed service and its secret under the kernel id; the pool's running standbys are this
    # server's and are not listed
    await full(pool)
    ours = {km.kernel_id, *(link.standby_id for link in pool.idle)}  # (other tests' objects may share the server id)
    found = [o for o in (await find(prov.server_id, swarm=True, containers=True))[0] if o.kernel_id in ours]
    assert sorted((o.kind, o.object_id, o.kernel_id) for o in found) == sorted(
        [("service", service, km.kernel_id), ("secret", prov.secret_id, km.kernel_id)]), found

    # reattach, as a restarted server would: only the saved provisioner info
    again = await reloaded(km)
    assert again.service_id == service and await again.poll() is None
    await again.detach()

    await execute(client, "x = 1")
    await km.restart_kernel()
    client.stop_channels()
    assert not await exists("service", "inspect", service)  # removed by id, like a cold kernel's service
    client = await connect(km)
    assert (await execute(client, "'x' in globals()"))["result"] == "False"
    second = km.provisioner.service_id
    client.stop_channels()
    await km.shutdown_kernel()
    assert not await exists("service", "inspect", second)
    assert pool.stats["lost"] == 0 and pool.stats["failed"] == 0, pool.stats


async def test_death_of_a_pooled_swarm_kernel_is_detected(kernels_dir: Path, pooled_spec: str) -> None:
    await warmed(kernels_dir, pooled_spec)
    km = manager(kernels_dir, pooled_spec)
    await km.start_kernel()
    prov = km.provisioner
    assert the_pool().stats["claimed"] == 1 and await prov.poll() is None
    (task,) = await tasks_of(prov.service_id)
    await docker_cli("kill", "--signal", "KILL", task["Status"]["ContainerStatus"]["ContainerID"])
    # wait() is woken by the container's die event, which carries the service id but no kernel_id label
    code = await asyncio.wait_for(prov.wait(), WAIT)
    assert code == 137 and await prov.poll() == 137
    await km.shutdown_kernel(now=True)
    assert not await exists("service", "inspect", prov.service_id or "none")


async def test_sweep_of_swarm_standbys_whose_server_is_gone(kernels_dir: Path, pooled_spec: str) -> None:
    pool = await warmed(kernels_dir, pooled_spec)
    server_id = pool.engine.launch.env["KF_SERVER_ID"]
    services = await of_pool("service", pool.pool_id)
    assert len(services) == 2 and len(await of_pool("secret", pool.pool_id)) == 2
    ours = {link.standby_id for link in pool.idle}

    async def swept() -> list[Orphan]:  # (other tests' objects may share this machine's server id)
        return [o for o in (await find(server_id, swarm=True, containers=True))[0] if o.kernel_id in ours]

    assert await swept() == []  # a running server's pool

    handles = [link.handle for link in pool.idle]
    containers = [(await tasks_of(handle.service_id))[0]["Status"]["ContainerStatus"]["ContainerID"]
                  for handle in handles]
    for link in list(pool.idle):  # what a server's death does to its standbys: their connections to the broker end
        link.drop()
    for container in containers:
        assert (await asyncio.wait_for(docker_cli("wait", container), WAIT)).strip() == "0"
    for handle in handles:  # Swarm marks the task ended a moment after its container: the sweep reads the task
        assert "task is complete" in await asyncio.wait_for(pool.engine.exited(handle), WAIT)  # type: ignore[attr-defined]
    orphans = await swept()
    assert sorted(o.kind for o in orphans) == ["secret", "secret", "service", "service"], orphans
    removals = await remove_orphans(orphans)
    assert [r.outcome.name for r in removals] == ["REMOVED"] * 4
    assert await of_pool("service", pool.pool_id) == [] and await of_pool("secret", pool.pool_id) == []


async def test_swarm_kernel_of_another_image_starts_cold(kernels_dir: Path, docker_spec: Callable[..., str]) -> None:
    """A request that settles to another uid than the pool's cannot use a running task: it starts cold."""
    name = docker_spec("docker-swarm-provisioner", "kf_swarm_pooled_uid", warm_pool_size=1)
    pool = await warmed(kernels_dir, name)
    km: AsyncKernelManager = manager(kernels_dir, name)
    await km.start_kernel(env={"KERNEL_UID": "1001", "PATH": "/usr/bin:/bin"})
    assert pool.stats["claimed"] == 0 and len(pool.idle) == 1
    assert km.provisioner.standby_id is None
    await km.shutdown_kernel(now=True)
