"""Warm pools on Docker (``docker-provisioner``): real standby containers of the image under test, the real broker,
jupyter_client's AsyncKernelManager. A claimed standby is renamed to its kernel's container name; everything that
finds a cold kernel's container (the event stream, reattach, the orphan sweep) finds it. Every wait is on an event:
the pool's change notifications, a cell's output, Docker's own ``docker wait``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from death_testing import reloaded
from kf_docker import docker_cli
from kf_testing import connect, execute, manager
from pool_testing import (
    WAIT,
    close_pools_leaving_no_container,
    containers_of_pool,
    full,
    inspect_container,
    runs_as_its_kernel,
    start_pooled,
    the_pool,
)

from kernelfleet.provisioners.pool.spec import LABEL_STANDBY
from kernelfleet.provisioners.sweep import Orphan, remove_orphans
from kernelfleet.provisioners.sweep.docker_objects import find


@pytest.fixture(autouse=True)
async def closed_pools(loopback_broker: None) -> AsyncIterator[None]:
    """Each test ends with its pools closed and none of their containers (idle or claimed) left on Docker."""
    yield
    await close_pools_leaving_no_container()


@pytest.fixture
def pooled_spec(docker_spec: Callable[..., str]) -> str:
    return docker_spec("docker-provisioner", "kf_docker_pooled", warm_pool_size=2)


async def test_pooled_docker_kernel_lifecycle(kernels_dir: Path, pooled_spec: str) -> None:
    km = await start_pooled(kernels_dir, pooled_spec)
    pool, prov = the_pool(), km.provisioner
    container = prov.container_id
    details = await inspect_container(container)
    assert details is not None and details["Name"] == f"/{prov.container_name}"  # renamed at the claim
    assert details["Config"]["Labels"][LABEL_STANDBY].startswith("standby-")  # type: ignore[index]

    client = await connect(km)
    await runs_as_its_kernel(km, client)

    # the sweep lists the claimed container under its kernel id; the pool's running standbys are this server's
    await full(pool, WAIT)  # (a replacement still being created would be listed: the operator's sweep has min_age)
    ours = {km.kernel_id, *(link.standby_id for link in pool.idle)}  # (other tests' containers share the server id)
    found = {o.kernel_id: o.object_id for o in (await find(prov.server_id, swarm=False, containers=True))[0]
             if o.kernel_id in ours}
    assert found == {km.kernel_id: container}, found

    # reattach, as a restarted server would: only the saved provisioner info
    again = await reloaded(km)
    assert again.container_id == container and await again.poll() is None
    await again.detach()

    await execute(client, "x = 1")
    await km.restart_kernel()
    client.stop_channels()
    assert await inspect_container(container) is None  # the claimed container was removed by id, like a cold one
    client = await connect(km)
    assert (await execute(client, "'x' in globals()"))["result"] == "False"
    second = km.provisioner.container_id
    client.stop_channels()
    await km.shutdown_kernel()
    assert await inspect_container(second) is None
    assert pool.stats["lost"] == 0 and pool.stats["failed"] == 0, pool.stats


async def test_request_env_and_working_dir_reach_the_pooled_docker_kernel(
    kernels_dir: Path, docker_spec: Callable[..., str]
) -> None:
    name = docker_spec("docker-provisioner", "kf_docker_pooled_dirs", warm_pool_size=1, mirror_working_dirs=True)
    km = await start_pooled(kernels_dir, name, env={**os.environ, "KERNEL_TEAM": "blue", "KERNEL_WORKING_DIR": "/tmp"})
    client = await connect(km)
    reply = await execute(client, "import os; (os.environ.get('KERNEL_TEAM'), os.getcwd())")
    assert reply["result"] == repr(("blue", "/tmp"))
    client.stop_channels()
    await km.shutdown_kernel(now=True)


async def test_a_kernel_id_its_container_name_cannot_carry_starts_cold(kernels_dir: Path, pooled_spec: str) -> None:
    """The sweep reads a claimed standby's kernel id from its name: only UUID ids are pooled, others start cold."""
    km = await start_pooled(kernels_dir, pooled_spec)  # one pooled start: the pool exists and refills
    await km.shutdown_kernel(now=True)
    pool = the_pool()
    await full(pool, WAIT)
    odd = manager(kernels_dir, pooled_spec, kernel_id="Odd_Kernel.Id")
    await odd.start_kernel()
    assert pool.stats["claimed"] == 1 and len(pool.idle) == 2, pool.stats
    labels = (await inspect_container(odd.provisioner.container_id))["Config"]["Labels"]  # type: ignore[index]
    assert labels["kernel_id"] == "Odd_Kernel.Id" and LABEL_STANDBY not in labels  # a cold kernel's container
    await odd.shutdown_kernel(now=True)


async def test_death_of_a_pooled_docker_kernel_is_detected(kernels_dir: Path, pooled_spec: str) -> None:
    km = await start_pooled(kernels_dir, pooled_spec)
    prov = km.provisioner
    assert await prov.poll() is None
    await docker_cli("kill", "--signal", "KILL", prov.container_id)
    # wait() returns on the container's die event, which carries no kernel_id label for a claimed standby
    code = await asyncio.wait_for(prov.wait(), WAIT)
    assert code == 137 and await prov.poll() == 137
    assert prov.end_reason and prov.container_name in prov.end_reason
    await km.shutdown_kernel(now=True)
    assert await inspect_container(prov.container_id or "") is None


async def test_sweep_of_standbys_whose_server_is_gone(kernels_dir: Path, pooled_spec: str) -> None:
    warmup = manager(kernels_dir, pooled_spec)
    await warmup.start_kernel()
    server_id = warmup.provisioner.server_id
    await warmup.shutdown_kernel(now=True)
    pool = the_pool()
    await full(pool, WAIT)
    standbys = await containers_of_pool(pool.pool_id)
    assert len(standbys) == 2
    ours = {link.standby_id for link in pool.idle}  # (other tests' containers may share this machine's server id)

    async def swept() -> list[Orphan]:
        return [o for o in (await find(server_id, swarm=False, containers=True))[0] if o.kernel_id in ours]

    assert await swept() == []  # a running server's pool

    for link in pool.idle:  # what a server's death does to its standbys: their connections to the broker end
        link.drop()
    for container in standbys:
        assert (await asyncio.wait_for(docker_cli("wait", container), WAIT)).strip() == "0"
    orphans = await swept()
    assert sorted(o.object_id for o in orphans) == sorted(standbys)
    assert all(o.kernel_id.startswith("standby-") for o in orphans)
    removals = await remove_orphans(orphans)
    assert [r.outcome.name for r in removals] == ["REMOVED", "REMOVED"]
    assert await containers_of_pool(pool.pool_id) == []
