"""The kernel's node lost (kubelite's NodeLifecycle plays kube-controller-manager, see its module docstring).

A node that stops reporting first only makes its pods not ready (``Ready`` False, phase still Running): the kernel may
still run (a partitioned node), so ``poll()`` must not call it dead and the restarter must leave it alone; when the
node is back the kernel runs code with its state. A node that stays away has its pods evicted after their unreachable
toleration: then the kernel is reported dead, with the cause "node lost", within the death tests' deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from death_testing import detection_time, figure, restarting_manager
from jupyter_client import AsyncKernelManager
from k8s_helpers import kernel_events
from kf_testing import connect, execute, manager
from kubernetes_asyncio import client

from kernelfleet.kubelite import KubeLite, NodeLifecycle

ENGINE = "kubernetes"
NOT_READY_WITHIN = 60.0


def ready(pod: dict[str, Any]) -> str | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return None


async def until_ready_is(core: client.CoreV1Api, kernel_id: str, wanted: str) -> None:
    """The test's own pod watch says the kernel pod's Ready condition is ``wanted``."""
    async with asyncio.timeout(NOT_READY_WITHIN):
        async for _, pod in kernel_events(core, "pod", kernel_id):
            if ready(pod) == wanted:
                return


async def stop(km: AsyncKernelManager) -> None:
    if km.has_kernel:
        await km.shutdown_kernel(now=True)


async def test_a_not_ready_node_is_not_a_dead_kernel(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                     k8s_spec: Callable[..., str]) -> None:
    km = restarting_manager(kernels_dir, k8s_spec())
    # The pods tolerate the unreachable node for kubelite's default 300 s: the node is back long before.
    lifecycle = NodeLifecycle(kube, monitor_grace=0.5)
    await km.start_kernel()
    kernel_id = str(km.kernel_id)
    try:
        kc = await connect(km)
        assert (await execute(kc, "x = 42\nx"))["result"] == "42"
        km.start_restarter()
        lifecycle.lose()
        await until_ready_is(core, kernel_id, "False")
        started = time.monotonic()
        while time.monotonic() - started < 3.0:  # the restarter (1 s period) polls meanwhile
            assert await km.provisioner.poll() is None, "a kernel on a NotReady node was declared dead"
        assert km.restarts.empty(), "the restarter restarted a kernel whose node was only NotReady"
        await lifecycle.recover()
        await until_ready_is(core, kernel_id, "True")
        assert (await execute(kc, "x"))["result"] == "42"
        assert km.restarts.empty()
        kc.stop_channels()
    finally:
        await lifecycle.recover()
        km.stop_restarter()
        await stop(km)


async def test_a_lost_node_is_reported_as_the_cause(kube: KubeLite, kernels_dir: Path, k8s_spec: Callable[..., str],
                                                    caplog: pytest.LogCaptureFixture,
                                                    request: pytest.FixtureRequest) -> None:
    caplog.set_level(logging.INFO)
    km = manager(kernels_dir, k8s_spec())
    lifecycle = NodeLifecycle(kube, monitor_grace=0.5, eviction_timeout=1.0)
    await km.start_kernel()
    try:
        async def lose() -> None:
            lifecycle.lose()

        elapsed = await detection_time(km.provisioner, lose)
        figure(request, ENGINE, "node lost (0.5 s grace, 1 s toleration)", elapsed)
        assert not await km.is_alive()
        reason = km.provisioner.end_reason or ""
        assert "node lost" in reason and km.provisioner.pod_name in reason, reason
        assert [r for r in caplog.records if reason in r.getMessage()], "the cause was not logged"
    finally:
        await lifecycle.recover()  # the kubelet is back and finishes the eviction
        await stop(km)
