"""Death of a running Kubernetes kernel (kubelite: pods are real Docker containers): ``kill -9`` of the kernel or
of its launcher, an OOM kill under the request's memory limit, and the pod deleted by someone else. ``poll()``
reports each from the shared pod watch, the OOM kill with its reason and limit in the log, and jupyter_client's
restarter restarts the kernel, which runs code again."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from death_testing import (
    detection_time,
    figure,
    host_pid,
    oom_detection,
    pid_in_container,
    restarted_after,
    restarting_manager,
)
from jupyter_client import AsyncKernelManager
from kf_docker import docker_cli
from kf_testing import manager
from kubernetes_asyncio import client

from kernelfleet.kubelite import KubeLite

ENGINE = "kubernetes"


async def pod_container(km: AsyncKernelManager) -> str:
    prov = km.provisioner
    ids = (await docker_cli("ps", "-q", "--no-trunc", "--filter", "label=kubelite=1",
                            "--filter", f"label=io.kubernetes.pod.name={prov.pod_name}",
                            "--filter", f"label=io.kubernetes.pod.namespace={prov.kernel_namespace}")).split()
    assert len(ids) == 1, f"expected the kernel pod's one container, found {ids}"
    return ids[0]


async def fault_for(km: AsyncKernelManager, core: client.CoreV1Api, victim: str) -> Callable[[], Awaitable[Any]]:
    prov = km.provisioner
    if victim == "deleted":
        async def delete() -> None:
            await core.delete_namespaced_pod(prov.pod_name, prov.kernel_namespace, grace_period_seconds=0)
        return delete
    inner = await pid_in_container(km, victim)
    container = await pod_container(km)
    pid = host_pid((await docker_cli("top", container, "-eo", "pid")).split()[1:], inner)

    async def kill() -> None:
        os.kill(pid, signal.SIGKILL)
    return kill


async def stop(km: AsyncKernelManager) -> None:
    if km.has_kernel:
        await km.shutdown_kernel(now=True)


@pytest.mark.parametrize("victim", ["kernel", "launcher", "deleted"])
async def test_fault_is_reported_by_poll(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                         k8s_spec: Callable[..., str], victim: str,
                                         caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest) -> None:
    caplog.set_level(logging.INFO)
    km = manager(kernels_dir, k8s_spec())
    await km.start_kernel()
    try:
        assert await km.provisioner.poll() is None
        fault = await fault_for(km, core, victim)
        elapsed = await detection_time(km.provisioner, fault)
        figure(request, ENGINE, "removed by someone else" if victim == "deleted" else f"kill -9 {victim}", elapsed)
        assert not await km.is_alive()
        reason = km.provisioner.end_reason or ""
        assert ("deleted outside this server" in reason) == (victim == "deleted"), reason
        assert [r for r in caplog.records if reason and reason in r.getMessage()], "the end was not logged"
    finally:
        await stop(km)


async def test_oom_kill_is_reported_with_its_reason(kube: KubeLite, kernels_dir: Path, k8s_spec: Callable[..., str],
                                                    caplog: pytest.LogCaptureFixture,
                                                    request: pytest.FixtureRequest) -> None:
    caplog.set_level(logging.INFO)
    km = manager(kernels_dir, k8s_spec())
    await km.start_kernel(env={**os.environ, "KERNEL_MEMORY_LIMIT": "160Mi"})
    try:
        elapsed = await oom_detection(km, caplog, "160Mi")
        figure(request, ENGINE, "OOM kill", elapsed)
    finally:
        await stop(km)


@pytest.mark.parametrize("victim", ["kernel", "deleted"])
async def test_restarter_restarts_after_the_fault(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                  k8s_spec: Callable[..., str], victim: str,
                                                  request: pytest.FixtureRequest) -> None:
    km = restarting_manager(kernels_dir, k8s_spec())
    await km.start_kernel()
    try:
        first = km.provisioner.pod_uid
        elapsed = await restarted_after(km, await fault_for(km, core, victim))
        figure(request, ENGINE, "removed by someone else" if victim == "deleted" else f"kill -9 {victim}", elapsed,
               metric="restart_s")
        assert km.provisioner.pod_uid != first
    finally:
        km.stop_restarter()
        await stop(km)
