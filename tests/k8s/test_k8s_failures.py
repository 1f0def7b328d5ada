"""A kernel pod that can never report fails the launch within 2 s of the API saying so, with the pod's reason and
events in the error, and the pod and its launch-token Secret are deleted. The 2 s are measured from the moment
the test's own watch sees the failure state to the moment start_kernel raises."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from k8s_helpers import kernel_events, pods_of, secrets_of
from kf_testing import manager
from kubernetes_asyncio import client

from kernelfleet.kubelite import KubeLite
from kernelfleet.kubelite.testing import ensure_image
from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.k8s.status import pod_failure

pytestmark = pytest.mark.timeout(90)
FAIL_FAST_SECONDS = 2.0


async def first_failure_seen(core: client.CoreV1Api, kernel_id: str) -> float:
    """When the test's own watch first sees the kernel's pod in a state it cannot recover from (its deletion,
    our own doing, does not count)."""
    async for kind, pod in kernel_events(core, "pod", kernel_id):
        if kind in ("ADDED", "MODIFIED") and pod_failure(pod) not in (None, "the pod was deleted"):
            return time.perf_counter()
    raise AssertionError("the watch ended")


async def fails_fast(core: client.CoreV1Api, kernels_dir: Path, name: str, **start: Any) -> tuple[str, float]:
    km = manager(kernels_dir, name)
    seen = asyncio.ensure_future(first_failure_seen(core, km.kernel_id))
    with pytest.raises(LaunchError) as err:
        await km.start_kernel(**start)
    raised = time.perf_counter()
    seen_at = await asyncio.wait_for(seen, 5)
    delay = raised - seen_at
    assert delay <= FAIL_FAST_SECONDS, f"the launch failed {delay:.2f}s after the API reported the failure"
    assert await pods_of(core, km.kernel_id) == [], "the failed pod was not deleted"
    assert await secrets_of(core, km.kernel_id) == [], "the failed launch's Secret was not deleted"
    message = str(err.value)
    assert km.kernel_id in message
    print(f"{name}: failed {delay * 1000:.0f} ms after the API reported it:\n{message}")
    return message, delay


async def test_image_pull_failure(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                  k8s_spec: Callable[..., str]) -> None:
    message, _ = await fails_fast(core, kernels_dir, k8s_spec("pull", image_name="kernelfleet/not-there:404"))
    assert "ErrImagePull" in message or "ImagePullBackOff" in message
    assert "kernelfleet/not-there:404" in message and "events:" in message


async def test_unschedulable(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                             k8s_spec: Callable[..., str]) -> None:
    message, _ = await fails_fast(core, kernels_dir, k8s_spec("nowhere", node_selector={"disktype": "quantum"}))
    assert "Unschedulable" in message and "FailedScheduling" in message


async def test_container_that_exits(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                    k8s_spec: Callable[..., str]) -> None:
    docker = aiodocker.Docker()
    try:
        image = await ensure_image(docker)  # busybox: its default command ends at once, no kernel ever reports
    finally:
        await docker.close()
    message, _ = await fails_fast(core, kernels_dir, k8s_spec("exits", image_name=image))
    assert "terminated" in message or "Completed" in message or "exit code" in message


async def test_oom_killed(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                          k8s_spec: Callable[..., str]) -> None:
    spec = k8s_spec("oom", resources={"limits": {"memory": "6Mi"}})
    message, _ = await fails_fast(core, kernels_dir, spec)
    assert "OOMKilled" in message


@pytest.mark.parametrize("shared", [True, False])
async def test_secret_create_refused(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                     k8s_spec: Callable[..., str], shared: bool) -> None:
    """Without permission to create Secrets the launch fails at once (no pod is made) with the kernel id, the API
    server's own message and what the server's service account lacks; a made namespace goes again."""
    kube.forbid("create", "secrets")
    km = manager(kernels_dir, k8s_spec("nosecrets", shared_namespace=shared))
    started = time.perf_counter()
    with pytest.raises(LaunchError) as err:
        await km.start_kernel()
    assert time.perf_counter() - started < 10
    message = str(err.value)
    assert km.kernel_id in message
    assert 'secrets is forbidden: User "system:serviceaccount:kernelfleet:kernelfleet" cannot create resource ' \
           '"secrets" in API group ""' in message and "(HTTP 403)" in message
    assert "needs the create and delete verbs on secrets" in message
    assert await pods_of(core, km.kernel_id) == []
    assert await secrets_of(core, km.kernel_id) == []
