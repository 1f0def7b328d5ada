"""Fixtures for the Kubernetes provisioner tests: a kubelite API server per test (pods are real Docker
containers), the real kernel image, kernelspecs for kubernetes-provisioner and spark-operator-provisioner.

Nothing is skipped: a missing dockerd or an image that cannot be built fails the test with what is missing.
Kernel pods get their own IPs on kubelite's pod network, as on a real cluster: the provisioner reaches the kernel
at the pod IP, and the response broker listens on (and is advertised at) the pod network's gateway, the address of
this host that pods reach, as an operator would advertise the Jupyter server's pod IP. With ``host_network``
(parametrize it, or KF_TEST_K8S_NETWORK=host for every test) pods use the node's network and the broker
127.0.0.1. Kubeconfig, broker address and host networking come from the environment, as an operator sets them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config

from kernelfleet.kubelite import KubeLite
from kernelfleet.kubelite.testing import docker_or_fail
from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.container_argv import container_argv
from kernelfleet.provisioners.k8s.client import KubeApi
from kernelfleet.provisioners.k8s.watch import SharedWatch
from kernelfleet.provisioners.leases import close_all

sys.path.insert(0, str(Path(__file__).resolve().parent))  # k8s_helpers, under --import-mode=importlib

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_IMAGE = "kernelfleet/kernel-py:dev"
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
SYSTEM_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}


@pytest.fixture(scope="session")
def kernel_image() -> str:
    """The kernel image (KF_TEST_IMAGE, as for the Docker tests; default the shared :dev tag), built with
    tools/build-images when it is missing."""
    image = os.environ.get("KF_TEST_IMAGE") or DEFAULT_IMAGE
    if shutil.which(DOCKER) is None:
        pytest.fail(f"the docker CLI ({DOCKER}) is not installed; run tools/setup-machine")
    inspect = [DOCKER, "image", "inspect", image]
    if subprocess.run(inspect, capture_output=True, check=False).returncode != 0:
        if image != DEFAULT_IMAGE:
            pytest.fail(f"the kernel image {image} (KF_TEST_IMAGE) is missing; build it with "
                        "KF_IMAGE_TAG=<tag> tools/build-images")
        built = subprocess.run([str(ROOT / "tools" / "build-images")], capture_output=True, text=True, check=False)
        if built.returncode != 0 or subprocess.run(inspect, capture_output=True, check=False).returncode != 0:
            pytest.fail(f"the kernel image {image} is missing and tools/build-images could not build it:\n"
                        f"{built.stderr[-3000:]}")
    return image


@pytest.fixture
def host_network() -> bool:
    """Kernel pods on the node's network (True) or with their own pod IPs (False, the default); a test
    parametrizes it to run both ways."""
    return os.environ.get("KF_TEST_K8S_NETWORK", "pod") == "host"


@pytest.fixture
async def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_image: str,
               host_network: bool) -> AsyncIterator[KubeLite]:
    """kubelite with its kubeconfig in KUBECONFIG; afterwards no kernel pod, namespace or container is left."""
    docker = await docker_or_fail()
    await docker.close()
    server = KubeLite(pull_backoff=(0.3, 2.0), restart_backoff=(0.3, 2.0))
    await server.start()
    assert server.pod_network is not None and server.pod_network.gateway
    path = server.write_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setenv("KF_RESPONSE_IP", "127.0.0.1" if host_network else server.pod_network.gateway)
    monkeypatch.setenv("KF_RESPONSE_PORT", "0")
    monkeypatch.setenv("KF_KUBERNETES_HOST_NETWORK", "true" if host_network else "false")
    try:
        yield server
        await assert_nothing_left(server, tmp_path / "kubeconfig")
    finally:
        await close_all()
        loop = asyncio.get_running_loop()
        await server.stop()
    assert loop not in KubeApi._instances
    assert loop not in SharedWatch._instances
    assert loop not in ResponseBroker._instances


async def assert_nothing_left(server: KubeLite, kubeconfig: Path) -> None:
    """Zero pods, zero launch Secrets, zero non-system namespaces, zero SparkApplications, zero containers of this
    kubelite."""
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    async with client.ApiClient(configuration=cfg) as api:
        core = client.CoreV1Api(api)
        pods = [f"{p.metadata.namespace}/{p.metadata.name}" for p in (await core.list_pod_for_all_namespaces()).items]
        secrets = [f"{s.metadata.namespace}/{s.metadata.name}"
                   for s in (await core.list_secret_for_all_namespaces(label_selector="app=kernelfleet")).items]
        namespaces = {n.metadata.name for n in (await core.list_namespace()).items} - SYSTEM_NAMESPACES
        apps = await client.CustomObjectsApi(api).list_cluster_custom_object(
            "sparkoperator.k8s.io", "v1beta2", "sparkapplications")
    assert not pods, f"pods left behind: {pods}"
    assert not secrets, f"launch Secrets left behind: {secrets}"
    assert not namespaces, f"namespaces left behind: {namespaces}"
    assert not apps["items"], f"SparkApplications left behind: {[a['metadata']['name'] for a in apps['items']]}"
    assert server.docker is not None
    # A pod that had already ended leaves the API at once and its container is removed in the background
    # (as a kubelet does): give that removal a moment.
    deadline = time.monotonic() + 5
    while containers := await server.docker.containers.list(
            all=True, filters={"label": [f"kubelite.instance={server.node.instance}"]}):
        if time.monotonic() > deadline:
            raise AssertionError(f"containers left behind: {[c.id[:12] for c in containers]}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def core(kube: KubeLite, tmp_path: Path) -> AsyncIterator[client.CoreV1Api]:
    """The test's own view of the API (its own client, not the provisioner's)."""
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(tmp_path / "kubeconfig"), client_configuration=cfg)
    async with client.ApiClient(configuration=cfg) as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def k8s_spec(make_kernelspec: Callable[..., str], kernel_image: str) -> Callable[..., str]:
    """A kubernetes-provisioner kernelspec as `jupyter k8s-spec install` writes it, plus extra config."""

    def make(name: str = "k8s_python", *, provisioner: str = "kubernetes-provisioner",
             metadata: dict[str, Any] | None = None, **config: Any) -> str:
        return make_kernelspec(
            name,
            argv=container_argv(kernel_class_name="ipykernel.ipkernel.IPythonKernel"),
            provisioner=provisioner,
            config={"image_name": kernel_image, "launch_timeout": 60, **config},
            metadata=metadata,
        )

    return make
