"""What the Kubernetes provisioner tests share: managers, clients, and the test's own view of the pods."""

from __future__ import annotations

import json
from pathlib import Path

from jupyter_client import AsyncKernelManager
from jupyter_client.provisioning import KernelProvisionerFactory
from kf_testing import manager
from kubernetes_asyncio import client


async def pods_of(core: client.CoreV1Api, kernel_id: str) -> list[client.V1Pod]:
    return (await core.list_pod_for_all_namespaces(label_selector=f"kernel_id={kernel_id}")).items


async def reattached(km: AsyncKernelManager, kernels_dir: Path, name: str) -> AsyncKernelManager:
    """A fresh manager and provisioner (a restarted server) that knows only the persisted provisioner info."""
    info = await km.provisioner.get_provisioner_info()
    km2 = manager(kernels_dir, name, kernel_id=km.kernel_id)
    km2.load_connection_info(km.get_connection_info())
    km2.provisioner = KernelProvisionerFactory.instance().create_provisioner_instance(
        km.kernel_id, km2.kernel_spec, parent=km2)
    await km2.provisioner.load_provisioner_info(info)
    km2._connect_control_socket()
    return km2


async def secrets_of(core: client.CoreV1Api, kernel_id: str) -> list[client.V1Secret]:
    """The kernel's launch-token Secrets, wherever they are (there should be one only while a launch is pending)."""
    return (await core.list_secret_for_all_namespaces(label_selector=f"kernel_id={kernel_id}")).items


def assert_token_by_reference(core: client.CoreV1Api, pod: client.V1Pod, token: str) -> None:
    """LAUNCH_TOKEN reaches the kernel container only as a secretKeyRef; the token is nowhere in the pod."""
    (entry,) = [e for e in pod.spec.containers[0].env if e.name == "LAUNCH_TOKEN"]
    assert entry.value is None
    ref = entry.value_from.secret_key_ref
    assert ref.name == f"{pod.metadata.name}-launch" and ref.key == "launch-token" and not ref.optional
    assert token and token not in json.dumps(core.api_client.sanitize_for_serialization(pod))
