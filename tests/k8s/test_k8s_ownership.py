"""Provisioners delete only what they created (issue 12, item 6), against kubelite through kubernetes_asyncio.

A start request chooses KERNEL_POD_NAME, which names the kernel's pod, its launch Secret, a per-kernel namespace
and a SparkApplication. Pointed at another user's object, the launch must fail with a clear error (kernel id, the
setting, the API server's 409) and that object must survive untouched: same uid, no deletion started. Before uids
were recorded, the failed launch's cleanup deleted the other user's pod or application by name.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from k8s_helpers import kernel_events, pods_of, reattached, secrets_of
from kf_testing import manager
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.kubelite import UNSCHEDULABLE_ANNOTATION, KubeLite
from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.k8s.provisioner import wait_namespace_gone

pytestmark = [pytest.mark.hostile, pytest.mark.timeout(120)]
GROUP, VERSION, PLURAL = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
VICTIM = "victim"
VICTIM_KERNEL = "0c0ffee0-0000-4000-8000-000000000000"  # the other user's kernel


def foreign_pod(name: str) -> dict[str, Any]:
    """Another user's kernel pod; kept off Docker (unschedulable), so it stays as the API has it."""
    return {"metadata": {"name": name, "labels": {"kernel_id": VICTIM_KERNEL, "app": "kernelfleet"},
                         "annotations": {UNSCHEDULABLE_ANNOTATION: "true"}},
            "spec": {"containers": [{"name": "kernel", "image": "kernelfleet/kernel-py:dev"}]}}


@pytest.fixture
async def victims(core: client.CoreV1Api) -> AsyncIterator[list[tuple[str, str | None, str]]]:
    """The other user's objects a test makes, as (kind, namespace, name); removed after the test."""
    made: list[tuple[str, str | None, str]] = []
    yield made
    custom = client.CustomObjectsApi(core.api_client)
    for kind, ns, name in reversed(made):
        try:
            if kind == "pod":
                await core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
            elif kind == "app":
                await custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, grace_period_seconds=0)
            else:
                await core.delete_namespace(name)
        except ApiException as err:
            assert err.status == 404
    for kind, _, name in made:
        if kind == "namespace":  # its content goes first; no test may leave it behind
            await wait_namespace_gone(core, name, 60)


async def still_there(core: client.CoreV1Api, pod: client.V1Pod) -> None:
    """The other user's pod exists with its uid, and nobody started to delete it."""
    now = await core.read_namespaced_pod(pod.metadata.name, pod.metadata.namespace)
    assert now.metadata.uid == pod.metadata.uid
    assert now.metadata.deletion_timestamp is None


def assert_collision_error(err: pytest.ExceptionInfo[LaunchError], kernel_id: str, conflict: str) -> None:
    message = str(err.value)
    assert kernel_id in message
    assert f"KERNEL_POD_NAME={VICTIM!r}" in message
    assert conflict in message and "(HTTP 409)" in message


async def test_pod_name_collision_leaves_the_other_pod_alone(
        kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path, k8s_spec: Callable[..., str],
        victims: list[tuple[str, str | None, str]]) -> None:
    theirs = await core.create_namespaced_pod("default", foreign_pod(VICTIM))
    victims.append(("pod", "default", VICTIM))
    km = manager(kernels_dir, k8s_spec())
    with pytest.raises(LaunchError) as err:
        await km.start_kernel(env={**os.environ, "KERNEL_POD_NAME": VICTIM})
    await still_there(core, theirs)
    assert_collision_error(err, km.kernel_id, f'pods "{VICTIM}" already exists')
    assert await pods_of(core, km.kernel_id) == []
    assert await secrets_of(core, km.kernel_id) == []  # our launch Secret (made first) is gone again


async def test_namespace_collision_leaves_the_other_namespace_alone(
        kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path, k8s_spec: Callable[..., str],
        victims: list[tuple[str, str | None, str]]) -> None:
    """Per-kernel namespaces are named after the pod: KERNEL_POD_NAME can name another user's namespace, which
    must not be deleted, nor anything in it (the old cleanup deleted the pod of the kernel's name in there)."""
    ns = await core.create_namespace({"metadata": {"name": VICTIM, "labels": {"kernel_id": VICTIM_KERNEL}}})
    victims.append(("namespace", None, VICTIM))
    theirs = await core.create_namespaced_pod(VICTIM, foreign_pod(VICTIM))
    victims.append(("pod", VICTIM, VICTIM))
    km = manager(kernels_dir, k8s_spec(shared_namespace=False))
    with pytest.raises(LaunchError) as err:
        await km.start_kernel(env={**os.environ, "KERNEL_POD_NAME": VICTIM})
    now = await core.read_namespace(VICTIM)
    assert now.metadata.uid == ns.metadata.uid and now.status.phase == "Active"
    await still_there(core, theirs)
    assert_collision_error(err, km.kernel_id, f'namespaces "{VICTIM}" already exists')
    assert await secrets_of(core, km.kernel_id) == []


async def test_spark_application_collision_leaves_the_other_application_alone(
        kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path, k8s_spec: Callable[..., str],
        victims: list[tuple[str, str | None, str]]) -> None:
    custom = client.CustomObjectsApi(core.api_client)
    theirs = await custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "SparkApplication",
        "metadata": {"name": VICTIM, "labels": {"kernel_id": VICTIM_KERNEL}},
        "spec": {"type": "Python", "mode": "cluster", "image": "kernelfleet/kernel-py:dev", "sparkVersion": "3.5.0",
                 "driver": {"labels": {"kernel_id": VICTIM_KERNEL},
                            "annotations": {UNSCHEDULABLE_ANNOTATION: "true"}}}})
    victims.append(("app", "default", VICTIM))
    driver = None
    async for _, pod in kernel_events(core, "pod", VICTIM_KERNEL):  # the operator made the other user's driver pod
        driver = await core.read_namespaced_pod(pod["metadata"]["name"], "default")
        break
    assert driver is not None and driver.metadata.name == f"{VICTIM}-driver"

    spec = k8s_spec("spark_collides", provisioner="spark-operator-provisioner",
                    driver_command=["/usr/local/bin/bootstrap-kernel.sh"])
    km = manager(kernels_dir, spec)
    with pytest.raises(LaunchError) as err:
        await km.start_kernel(env={**os.environ, "KERNEL_POD_NAME": VICTIM})
    now = await custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, VICTIM)
    assert now["metadata"]["uid"] == theirs["metadata"]["uid"] and not now["metadata"].get("deletionTimestamp")
    await still_there(core, driver)
    assert_collision_error(err, km.kernel_id, f'sparkapplications.sparkoperator.k8s.io "{VICTIM}" already exists')
    assert await secrets_of(core, km.kernel_id) == []


async def test_reattached_kernel_does_not_delete_a_pod_that_replaced_its_own(
        kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path, k8s_spec: Callable[..., str],
        victims: list[tuple[str, str | None, str]]) -> None:
    """A restarted server keeps the uid from the provisioner info: when the kernel's pod was deleted behind its
    back and another user's pod took the name, shutting the kernel down leaves that pod alone."""
    name = k8s_spec()
    km = manager(kernels_dir, name)
    await km.start_kernel()
    (ours,) = await pods_of(core, km.kernel_id)
    info = await km.provisioner.get_provisioner_info()
    km2 = await reattached(km, kernels_dir, name)
    await km.provisioner.release()  # the "old server" dies

    await core.delete_namespaced_pod(ours.metadata.name, "default", grace_period_seconds=0)
    theirs = await core.create_namespaced_pod("default", foreign_pod(ours.metadata.name))
    victims.append(("pod", "default", ours.metadata.name))
    assert not await km2.is_alive()  # its own pod is gone: the other pod of the same name is not the kernel
    await km2.shutdown_kernel(now=True)
    await still_there(core, theirs)
    assert info["owned"]["pod"] == {"name": ours.metadata.name, "uid": ours.metadata.uid}
