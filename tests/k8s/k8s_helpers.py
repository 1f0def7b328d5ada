"""What the Kubernetes provisioner tests share: managers, clients, and the test's own view of the pods."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.provisioning import KernelProvisionerFactory
from kubernetes_asyncio import client


def manager(kernels_dir: Path, name: str, kernel_id: str | None = None) -> AsyncKernelManager:
    return AsyncKernelManager(
        kernel_name=name,
        kernel_id=kernel_id or str(uuid.uuid4()),
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]),
    )


async def connect(km: AsyncKernelManager) -> AsyncKernelClient:
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=30)
    return kc


async def interrupt_busy_cell(km: AsyncKernelManager, kc: AsyncKernelClient) -> None:
    busy = kc.execute("import time\nwhile True: time.sleep(0.01)")
    await asyncio.sleep(0.5)
    await km.interrupt_kernel()
    async with asyncio.timeout(10):
        while (msg := await kc.get_shell_msg())["parent_header"].get("msg_id") != busy:
            pass
    assert msg["content"]["status"] == "error" and msg["content"]["ename"] == "KeyboardInterrupt"


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
