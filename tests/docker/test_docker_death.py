"""Death of a running Docker or Swarm kernel, each fault dealt for real: ``kill -9`` of the kernel or of its
launcher (host pids of the container's processes), an OOM kill under the kernelspec's memory_limit, and the
container (or service) removed by someone else. ``poll()`` reports each from Docker's events, the OOM kill with
its reason and limit in the log, and jupyter_client's restarter restarts the kernel, which runs code again.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from death_testing import (
    DEADLINE,
    detection_time,
    figure,
    host_pid,
    oom_detection,
    pid_in_container,
    reloaded,
    restarted_after,
    restarting_manager,
)
from jupyter_client import AsyncKernelManager
from kf_docker import docker_cli, leftovers
from kf_testing import manager

ENGINES = {"docker-provisioner": "docker", "docker-swarm-provisioner": "swarm"}
MEMORY_LIMIT = "160m"


async def kernel_container(km: AsyncKernelManager) -> str:
    """The id of the container the kernel runs in (the service's task container for Swarm)."""
    ids = (await docker_cli("ps", "-q", "--no-trunc", "--filter", f"label=kernel_id={km.kernel_id}")).split()
    assert len(ids) == 1, f"expected one running container for kernel {km.kernel_id}, found {ids}"
    return ids[0]


async def container_pid(container: str, pid_in_container: int) -> int:
    """The host pid of a process the container's pid namespace calls ``pid_in_container``."""
    return host_pid((await docker_cli("top", container, "-eo", "pid")).split()[1:], pid_in_container)


async def fault_for(km: AsyncKernelManager, victim: str) -> Callable[[], Awaitable[Any]]:
    """Prepare the fault (find whom to hit) so that dealing it is one system call or one CLI command."""
    prov = km.provisioner
    container = await kernel_container(km)
    if victim in ("kernel", "launcher"):
        pid = await container_pid(container, await pid_in_container(km, victim))

        async def kill() -> None:
            os.kill(pid, signal.SIGKILL)
        return kill
    if victim == "removed":
        if ENGINES[km.provisioner_name] == "swarm":
            return lambda: docker_cli("service", "rm", prov.service_id)
        return lambda: docker_cli("rm", "-f", container)
    raise ValueError(victim)


async def start(provisioner: str, docker_spec: Callable[..., str], kernels_dir: Path, **config: Any) -> (
        AsyncKernelManager):
    km = manager(kernels_dir, docker_spec(provisioner, **config))
    km.provisioner_name = provisioner
    await km.start_kernel()
    return km


async def stop(km: AsyncKernelManager) -> None:
    if km.has_kernel:
        await km.shutdown_kernel(now=True)
    assert await leftovers(str(km.kernel_id)) == []


@pytest.mark.parametrize("victim", ["kernel", "launcher", "removed"])
async def test_fault_is_reported_by_poll(provisioner: str, docker_spec: Callable[..., str], kernels_dir: Path,
                                         victim: str, request: pytest.FixtureRequest) -> None:
    km = await start(provisioner, docker_spec, kernels_dir)
    try:
        assert await km.provisioner.poll() is None
        fault = await fault_for(km, victim)
        elapsed = await detection_time(km.provisioner, fault)
        figure(request, ENGINES[provisioner], "removed by someone else" if victim == "removed" else
               f"kill -9 {victim}", elapsed)
        assert not await km.is_alive()
        if victim == "removed":
            assert "removed outside this server" in (km.provisioner.end_reason or "")
    finally:
        await stop(km)


async def test_oom_kill_is_reported_with_its_reason(provisioner: str, docker_spec: Callable[..., str],
                                                    kernels_dir: Path, caplog: pytest.LogCaptureFixture,
                                                    request: pytest.FixtureRequest) -> None:
    caplog.set_level(logging.INFO)
    km = await start(provisioner, docker_spec, kernels_dir, memory_limit=MEMORY_LIMIT)
    try:
        container = await kernel_container(km)
        limit = (await docker_cli("inspect", "-f", "{{.HostConfig.Memory}}", container)).strip()
        assert limit == str(160 * 1024**2), f"the container's memory limit is {limit}"
        elapsed = await oom_detection(km, caplog, "160 MiB")
        figure(request, ENGINES[provisioner], "OOM kill", elapsed)
    finally:
        await stop(km)


@pytest.mark.parametrize("victim", ["kernel", "removed"])
async def test_restarter_restarts_after_the_fault(provisioner: str, docker_spec: Callable[..., str],
                                                  kernels_dir: Path, victim: str,
                                                  request: pytest.FixtureRequest) -> None:
    km = restarting_manager(kernels_dir, docker_spec(provisioner))
    km.provisioner_name = provisioner
    await km.start_kernel()
    try:
        first = await kernel_container(km)
        fault = await fault_for(km, victim)
        elapsed = await restarted_after(km, fault)
        figure(request, ENGINES[provisioner], "removed by someone else" if victim == "removed" else
               f"kill -9 {victim}", elapsed, metric="restart_s")
        assert await kernel_container(km) != first
    finally:
        km.stop_restarter()
        await stop(km)


async def test_reattached_poll_asks_docker(provisioner: str, docker_spec: Callable[..., str], kernels_dir: Path,
                                           request: pytest.FixtureRequest) -> None:
    """After ``load_provisioner_info`` (a new server), ``poll()`` follows the engine's events, not the launcher."""
    km = await start(provisioner, docker_spec, kernels_dir)
    try:
        fresh = await reloaded(km)
        try:
            assert await fresh.poll() is None
            fault = await fault_for(km, "launcher")
            elapsed = await detection_time(fresh, fault, within=DEADLINE)
            figure(request, ENGINES[provisioner], "kill -9 launcher (reattached)", elapsed)
        finally:
            await fresh.detach()
    finally:
        await stop(km)
