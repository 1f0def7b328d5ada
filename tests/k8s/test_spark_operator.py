"""spark-operator-provisioner against kubelite's SparkApplication controller: the kernel runs as the application's
driver pod (the real kernel image; its bootstrap replaces spark-submit through spec.driver.template), and the
executors run as pods owned by the driver pod (a stand-in command replaces Spark's executor through
spec.executor.template), as on a cluster with the Kubeflow Spark operator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from k8s_helpers import assert_token_by_reference, kernel_events, pods_of, reattached, secrets_of
from kf_testing import connect, execute, interrupt_busy_cell, manager
from kubernetes_asyncio import client

from kernelfleet.kubelite import KubeLite
from kernelfleet.provisioners.base import LaunchError

pytestmark = pytest.mark.timeout(120)
GROUP, VERSION, PLURAL = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"


@pytest.fixture
def spark_spec(k8s_spec: Callable[..., str]) -> Callable[..., str]:
    def make(name: str = "k8s_python_spark_operator", **config: Any) -> str:
        config.setdefault("driver_command", ["/usr/local/bin/bootstrap-kernel.sh"])
        config.setdefault("executor_command", ["sleep", "infinity"])
        config.setdefault("executor_instances", 2)
        return k8s_spec(name, provisioner="spark-operator-provisioner", **config)

    return make


async def applications(core: client.CoreV1Api, namespace: str = "default") -> list[dict[str, Any]]:
    listed = await client.CustomObjectsApi(core.api_client).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL)
    return list(listed["items"])


async def running_executors(core: client.CoreV1Api, kernel_id: str, count: int) -> list[dict[str, Any]]:
    """The kernel's executor pods once ``count`` of them run, as the test's own watch sees them."""
    running: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(60):
        async for kind, pod in kernel_events(core, "pod", kernel_id):
            if (pod["metadata"].get("labels") or {}).get("spark-role") != "executor":
                continue
            if kind != "DELETED" and (pod.get("status") or {}).get("phase") == "Running":
                running[pod["metadata"]["name"]] = pod
            else:
                running.pop(pod["metadata"]["name"], None)
            if len(running) == count:
                return sorted(running.values(), key=lambda p: p["metadata"]["name"])
    raise AssertionError("unreachable")


async def no_pods_left(core: client.CoreV1Api, kernel_id: str) -> None:
    """Every pod of the kernel is gone (driver and executors), as the test's own watch sees it."""
    async with asyncio.timeout(60):
        if not await pods_of(core, kernel_id):
            return
        present: set[str] = set()
        async for kind, pod in kernel_events(core, "pod", kernel_id):
            if kind == "DELETED":
                present.discard(pod["metadata"]["name"])
            else:
                present.add(pod["metadata"]["name"])
            if not present:
                return


async def test_create_execute_reattach_delete(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                              spark_spec: Callable[..., str]) -> None:
    name = spark_spec()
    km = manager(kernels_dir, name)
    await km.start_kernel()
    apps = await applications(core)
    assert len(apps) == 1
    app = apps[0]
    assert app["metadata"]["labels"]["kernel_id"] == km.kernel_id
    assert app["status"]["applicationState"]["state"] == "RUNNING"
    driver_env = {e["name"]: e for e in app["spec"]["driver"]["env"]}
    assert driver_env["KERNEL_ID"]["value"] == km.kernel_id
    pods = [p for p in await pods_of(core, km.kernel_id) if p.metadata.labels.get("spark-role") == "driver"]
    assert [p.metadata.name for p in pods] == [f"{app['metadata']['name']}-driver"]
    executors = await running_executors(core, km.kernel_id, 2)
    for executor in executors:  # owned by the driver pod, the executor image, no launch token anywhere
        assert [(ref["kind"], ref["name"], ref["uid"]) for ref in executor["metadata"]["ownerReferences"]] == [
            ("Pod", pods[0].metadata.name, pods[0].metadata.uid)]
        container = executor["spec"]["containers"][0]
        assert container["image"] == app["spec"]["executor"]["image"]
        assert "LAUNCH_TOKEN" not in str(executor) and km.provisioner.launch_env["LAUNCH_TOKEN"] not in str(executor)
    app = (await applications(core))[0]  # the operator mirrors the executors' phases
    assert app["status"]["executorState"] == {e["metadata"]["name"]: "RUNNING" for e in executors}
    # the driver reads the token from the launch's Secret (gone once the kernel reported); executors never get it
    assert driver_env["LAUNCH_TOKEN"] == {"name": "LAUNCH_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": f"{app['metadata']['name']}-launch", "key": "launch-token"}}}
    assert "LAUNCH_TOKEN" not in {e["name"] for e in app["spec"]["executor"]["env"]}
    assert_token_by_reference(core, pods[0], km.provisioner.launch_env["LAUNCH_TOKEN"],
                              secret=f"{app['metadata']['name']}-launch")
    assert await secrets_of(core, km.kernel_id) == []

    kc = await connect(km)
    try:
        assert (await execute(kc, "21 * 2"))["result"] == "42"
    finally:
        kc.stop_channels()

    # a restarted server: a fresh provisioner from the persisted info polls, interrupts and deletes the application
    info = await km.provisioner.get_provisioner_info()
    assert info["resource_name"] == app["metadata"]["name"]
    km2 = await reattached(km, kernels_dir, name)
    assert await km2.is_alive()
    kc = await connect(km2)
    try:
        await interrupt_busy_cell(km2, kc)
    finally:
        kc.stop_channels()
    await km2.shutdown_kernel()
    assert await applications(core) == []
    await no_pods_left(core, km.kernel_id)  # the executors went with their driver (garbage collection)
    await km.provisioner.release()


async def test_submission_failed_fails_fast_with_operator_message(
        kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path, spark_spec: Callable[..., str]) -> None:
    """The driver pod is refused by the API (its service account does not exist): SUBMISSION_FAILED."""
    km = manager(kernels_dir, spark_spec(service_account_name="no-such-account"))
    started = time.perf_counter()
    with pytest.raises(LaunchError) as err:
        await km.start_kernel()
    assert time.perf_counter() - started < 5
    message = str(err.value)
    assert km.kernel_id in message and "SUBMISSION_FAILED" in message
    assert 'serviceaccount "no-such-account" not found' in message
    assert await applications(core) == []


async def test_failed_application_fails_the_launch(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                   spark_spec: Callable[..., str]) -> None:
    """The driver exits before the kernel reports: the operator says FAILED, and so does the launch."""
    km = manager(kernels_dir, spark_spec("spark_dies", driver_command=["sh", "-c", "echo no spark here >&2; exit 7"]))
    with pytest.raises(LaunchError) as err:
        await asyncio.wait_for(km.start_kernel(), 30)
    message = str(err.value)
    assert km.kernel_id in message
    assert "FAILED" in message or "exit code 7" in message
    assert "no spark here" in message or "ExitCode: 7" in message
    assert await applications(core) == []
    assert await pods_of(core, km.kernel_id) == []
