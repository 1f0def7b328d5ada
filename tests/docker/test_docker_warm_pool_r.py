"""Warm pools of R standbys on Docker (``docker-provisioner``, the R kernel image under test, ``KF_TEST_R_IMAGE``):
standby containers whose pure-R launcher has loaded IRkernel, the real broker, jupyter_client's AsyncKernelManager.
A claimed standby is renamed to its kernel's container name and becomes the kernel in its own R process. Every
wait is on an event (the pool's change notifications, a cell's output), never a sleep."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from kf_testing import manager
from pool_testing import close_pools_leaving_no_container, full, inspect_container, the_pool
from rs_testing import SAY_STARTED_R, connect, execute, execute_settled, interrupt

from kernelfleet.provisioners.container_argv import container_argv
from kernelfleet.provisioners.docker.standbys import LABEL_STANDBY

R_IMAGE = os.environ.get("KF_TEST_R_IMAGE", "kernelfleet/kernel-r:dev")
READY = 90.0
FILL = 180.0

pytestmark = pytest.mark.timeout(400)


@pytest.fixture(autouse=True)
async def closed_pools(loopback_broker: None) -> AsyncIterator[None]:
    """Each test ends with its pools closed and none of their containers (idle or claimed) left on Docker."""
    yield
    await close_pools_leaving_no_container()


@pytest.fixture
def r_docker_spec(make_kernelspec: Callable[..., str]) -> str:
    return make_kernelspec("kf_docker_r_pooled", argv=container_argv(), provisioner="docker-provisioner",
                           language="R", config={"image_name": R_IMAGE, "network": "host", "warm_pool_size": 1})


async def test_pooled_r_docker_kernel_lifecycle(kernels_dir: Path, r_docker_spec: str) -> None:
    warmup = manager(kernels_dir, r_docker_spec)  # the first start creates the pool and goes cold
    await warmup.start_kernel()
    await warmup.shutdown_kernel(now=True)
    pool = the_pool()
    await full(pool, FILL)

    km = manager(kernels_dir, r_docker_spec)
    await km.start_kernel(env={**os.environ, "KERNEL_TEAM": "blue"})
    assert pool.stats["claimed"] == 1, pool.stats
    prov = km.provisioner
    container = prov.container_id
    details = await inspect_container(container)
    assert details is not None and details["Name"] == f"/{prov.container_name}"  # renamed at the claim
    assert details["Config"]["Labels"][LABEL_STANDBY].startswith("standby-")  # type: ignore[index]

    client = await connect(km, READY)
    assert (await execute(client, "1+1"))["result"] == "[1] 2"
    seen = await execute(client, 'cat(Sys.getenv(c("KERNEL_ID", "KERNEL_TEAM", "KF_STANDBY_ID", "LAUNCH_TOKEN_FILE")), '
                                 'sep = "\\n")')
    assert seen["stdout"].split("\n")[:4] == [km.kernel_id, "blue", "", ""], seen
    reply = await interrupt(km, client, SAY_STARTED_R + "Sys.sleep(600)")
    assert reply["status"] in ("abort", "aborted", "error"), reply
    assert (await execute_settled(client, "x <- 6*7; x"))["result"] == "[1] 42"

    await km.restart_kernel()
    client.stop_channels()
    assert await inspect_container(container) is None  # the claimed container was removed by id, like a cold one
    client = await connect(km, READY)
    assert (await execute(client, "exists('x')"))["result"] == "[1] FALSE"
    second = km.provisioner.container_id
    client.stop_channels()
    await km.shutdown_kernel()
    assert await inspect_container(second) is None
    assert pool.stats["lost"] == 0 and pool.stats["failed"] == 0, pool.stats
