"""What the Kubernetes provisioner tests share: managers, clients, and the test's own view of the pods."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from jupyter_client import AsyncKernelManager
from jupyter_client.provisioning import KernelProvisionerFactory
from kf_testing import manager
from kubernetes_asyncio import client


async def pods_of(core: client.CoreV1Api, kernel_id: str) -> list[client.V1Pod]:
    return (await core.list_pod_for_all_namespaces(label_selector=f"kernel_id={kernel_id}")).items


async def kernel_events(core: client.CoreV1Api, kind: str, kernel_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The kernel's ``kind`` objects (``pod``, ``secret``) as the test's own watch sees them: those that exist
    as ADDED, then every change; a watch the server ends is resumed from the last version seen."""
    list_all = getattr(core, f"list_{kind}_for_all_namespaces")
    label = f"kernel_id={kernel_id}"
    listed = await list_all(label_selector=label)
    version = listed.metadata.resource_version
    for item in listed.items:
        yield "ADDED", core.api_client.sanitize_for_serialization(item)
    while True:
        response = await list_all(label_selector=label, watch=True, resource_version=version, timeout_seconds=60,
                                  _preload_content=False)
        try:
            while line := await response.content.readline():
                event = json.loads(line)
                yield event["type"], event["object"]
                version = event["object"]["metadata"]["resourceVersion"]
        finally:
            response.release()


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


async def refused_launch(km: AsyncKernelManager, core: client.CoreV1Api) -> str:
    """Start a kernel whose launch must fail; the error names the kernel and nothing of it is left. Returns the
    error's text."""
    from kernelfleet.provisioners.base import LaunchError

    try:
        await km.start_kernel()
    except LaunchError as err:
        message = str(err)
    else:
        await km.shutdown_kernel(now=True)
        raise AssertionError(f"kernel {km.kernel_id} started, but its launch should have failed")
    assert km.kernel_id in message
    assert await pods_of(core, km.kernel_id) == [] and await secrets_of(core, km.kernel_id) == []
    return message


async def secrets_of(core: client.CoreV1Api, kernel_id: str) -> list[client.V1Secret]:
    """The kernel's launch-token Secrets, wherever they are (there should be one only while a launch is pending)."""
    return (await core.list_secret_for_all_namespaces(label_selector=f"kernel_id={kernel_id}")).items


def assert_token_by_reference(core: client.CoreV1Api, pod: client.V1Pod, token: str, secret: str | None = None) -> None:
    """LAUNCH_TOKEN reaches the kernel container only as a secretKeyRef to the launch Secret (``<pod>-launch``
    unless named); the token is nowhere in the pod."""
    (entry,) = [e for e in pod.spec.containers[0].env if e.name == "LAUNCH_TOKEN"]
    assert entry.value is None
    ref = entry.value_from.secret_key_ref
    assert ref.name == (secret or f"{pod.metadata.name}-launch") and ref.key == "launch-token" and not ref.optional
    assert token and token not in json.dumps(core.api_client.sanitize_for_serialization(pod))


#: The template kinds of ``TEMPLATE_WITH_OBJECTS``, for ``template_object_kinds``.
TEMPLATE_KINDS = ["ConfigMap", "Secret", "PersistentVolumeClaim", "Service"]
#: A kernelspec pod template as GP's kernel-pod.yaml could be: a ConfigMap the pod mounts, a Secret it reads, a claim
#: and a headless Service next to the Pod (test_k8s_template_objects, test_k8s_rbac).
TEMPLATE_WITH_OBJECTS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: "{{ kernel_pod_name ~ '-conf' }}"
data:
  greeting: "{{ 'hello ' ~ kernel_id }}"
---
apiVersion: v1
kind: Secret
metadata:
  name: "{{ kernel_pod_name ~ '-db' }}"
stringData:
  password: not-a-real-password
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: "{{ kernel_pod_name ~ '-data' }}"
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: Service
metadata:
  name: "{{ kernel_pod_name }}"
spec:
  clusterIP: None
  selector:
    kernel_id: "{{ kernel_id }}"
  ports:
  - name: shell
    port: 8888
---
apiVersion: v1
kind: Pod
metadata:
  name: "{{ kernel_pod_name }}"
spec:
  containers:
  - name: kernel
    image: "{{ kernel_image }}"
    env:
    - name: DB_PASSWORD
      valueFrom:
        secretKeyRef:
          name: "{{ kernel_pod_name ~ '-db' }}"
          key: password
    volumeMounts:
    - name: conf
      mountPath: /etc/kernel-conf
  volumes:
  - name: conf
    configMap:
      name: "{{ kernel_pod_name ~ '-conf' }}"
"""
