"""kubernetes-provisioner through jupyter_client's AsyncKernelManager, as a notebook server drives it, against
kubelite (a real API server protocol; pods are real Docker containers running the real kernel image)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from k8s_helpers import assert_token_by_reference, kernel_events, pods_of, reattached, secrets_of
from kf_testing import connect, execute, interrupt_busy_cell, manager
from kubernetes_asyncio import client

from kernelfleet.kubelite import KubeLite
from kernelfleet.provisioners.server_identity import server_id_of

pytestmark = pytest.mark.timeout(120)


async def lifecycle(km: AsyncKernelManager, core: client.CoreV1Api, tokens: list[str] | None = None,
                    addresses: list[str] | None = None) -> client.V1Pod:
    """Start, execute, interrupt, restart, shutdown; returns the pod the kernel ran in (``addresses``: the kernel's
    address in the connection info, as the client used it).

    The launch token reaches each pod only through its Secret, and that Secret is gone once the kernel reported."""
    await km.start_kernel()
    if addresses is not None:
        addresses.append(km.get_connection_info()["ip"])
    kc = await connect(km)
    secrets = tokens if tokens is not None else []
    secrets += [km.provisioner.launch_env["LAUNCH_TOKEN"], km.session.key.decode()]
    try:
        pods = await pods_of(core, km.kernel_id)
        assert len(pods) == 1 and pods[0].status.phase == "Running"
        pod = pods[0]
        stored = await core.read_namespaced_pod(pod.metadata.name, pod.metadata.namespace)
        assert_token_by_reference(core, stored, km.provisioner.launch_env["LAUNCH_TOKEN"])
        assert await secrets_of(core, km.kernel_id) == []  # deleted as soon as the report was accepted
        reply = await execute(kc, "import os; x = 6 * 7; (x, os.getuid(), os.environ['KERNEL_POD_NAME'])")
        assert reply["status"] == "ok"
        assert reply["result"] == f"(42, 1000, '{pod.metadata.name}')"
        await interrupt_busy_cell(km, kc)
        assert (await execute(kc, "x + 1"))["result"] == "43"

        await km.restart_kernel()
        kc.stop_channels()
        kc = await connect(km)
        secrets.append(km.provisioner.launch_env["LAUNCH_TOKEN"])
        assert (await execute(kc, "'x' in globals()"))["result"] == "False"
        after = await pods_of(core, km.kernel_id)
        assert len(after) == 1 and after[0].metadata.uid != pod.metadata.uid  # a fresh pod, same name
        assert after[0].metadata.name == pod.metadata.name
        assert_token_by_reference(core, after[0], km.provisioner.launch_env["LAUNCH_TOKEN"])  # a fresh token
        assert secrets[-1] != secrets[0]
        assert await secrets_of(core, km.kernel_id) == []
    finally:
        kc.stop_channels()
    started = time.perf_counter()
    await km.shutdown_kernel()
    assert not km.has_kernel
    assert await pods_of(core, km.kernel_id) == []  # gone when shutdown returns, not eventually
    assert await secrets_of(core, km.kernel_id) == []
    assert time.perf_counter() - started < 15
    return pod


@pytest.mark.parametrize("host_network", [False, True], ids=["pod-network", "host-network"])
async def test_shared_namespace_lifecycle(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                          k8s_spec: Callable[..., str], caplog: pytest.LogCaptureFixture,
                                          host_network: bool) -> None:
    """The whole lifecycle with the kernel reached at its own pod IP (as on every cluster) and, as an option, on
    the node's network."""
    caplog.set_level(logging.DEBUG)
    km = manager(kernels_dir, k8s_spec())
    tokens: list[str] = []
    addresses: list[str] = []
    pod = await lifecycle(km, core, tokens, addresses)
    assert tokens and "Kernel" in caplog.text
    for secret in tokens:  # the launch tokens are in no pod spec and never in a log line at any level
        assert secret not in caplog.text
    assert pod.metadata.namespace == "default"
    assert kube.pod_network is not None and kube.pod_network.subnet
    if host_network:
        assert pod.spec.host_network is True and pod.status.pod_ip == "127.0.0.1"
    else:
        assert not pod.spec.host_network
        assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(kube.pod_network.subnet)
    assert addresses[0] == pod.status.pod_ip  # the client connected to the kernel at the pod's IP
    assert pod.spec.security_context.run_as_user == 1000
    labels = pod.metadata.labels
    assert labels["kernel_id"] == km.kernel_id and labels["component"] == "kernel"


async def test_per_kernel_namespace_lifecycle(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                              k8s_spec: Callable[..., str]) -> None:
    km = manager(kernels_dir, k8s_spec(shared_namespace=False))
    namespaces_during: list[str] = []

    async def record() -> None:
        while not namespaces_during:
            pods = await pods_of(core, km.kernel_id)
            if pods:
                namespaces_during.append(pods[0].metadata.namespace)
            await asyncio.sleep(0.2)

    recorder = asyncio.ensure_future(record())
    try:
        pod = await lifecycle(km, core)
    finally:
        recorder.cancel()
    ns = pod.metadata.namespace
    assert ns != "default" and ns == pod.metadata.name
    names = {n.metadata.name for n in (await core.list_namespace()).items}
    assert ns not in names  # deleted with the kernel (the restart kept it: the pod name and namespace never changed)


async def test_per_kernel_namespace_has_role_binding(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                     k8s_spec: Callable[..., str]) -> None:
    km = manager(kernels_dir, k8s_spec(shared_namespace=False))
    await km.start_kernel()
    try:
        ns = km.provisioner.kernel_namespace
        rbac = client.RbacAuthorizationV1Api(core.api_client)
        bindings = (await rbac.list_namespaced_role_binding(ns)).items
        assert [(b.role_ref.kind, b.role_ref.name) for b in bindings] == [("ClusterRole", "kernel-controller")]
        assert [(s.kind, s.name, s.namespace) for s in bindings[0].subjects] == [("ServiceAccount", "default", ns)]
    finally:
        await km.shutdown_kernel(now=True)


async def test_reattach_after_host_restart(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                           k8s_spec: Callable[..., str]) -> None:
    """A new manager (a restarted server) picks the kernel up from the persisted provisioner info."""
    name = k8s_spec(shared_namespace=False)
    km = manager(kernels_dir, name)
    await km.start_kernel()
    info = await km.provisioner.get_provisioner_info()
    assert info["pod_name"] and info["kernel_namespace"] and info["created_namespace"] is True
    km2 = await reattached(km, kernels_dir, name)
    assert await km2.is_alive()
    kc = await connect(km2)
    try:
        assert (await execute(kc, "1 + 1"))["result"] == "2"
        await interrupt_busy_cell(km2, kc)
    finally:
        kc.stop_channels()
    await km2.shutdown_kernel()
    assert await pods_of(core, km.kernel_id) == []
    assert info["kernel_namespace"] not in {n.metadata.name for n in (await core.list_namespace()).items}
    await km.provisioner.release()  # the "old server" had died; give back its watch and client lease


async def secret_events(core: client.CoreV1Api, kernel_id: str, seen: list[tuple[str, dict]]) -> None:
    """Every change to the kernel's Secrets, as the test's own watch sees it, until one is deleted."""
    async for event in kernel_events(core, "secret", kernel_id):
        seen.append(event)
        if event[0] == "DELETED":
            return


async def test_launch_secret_lives_only_until_the_report(kube: KubeLite, core: client.CoreV1Api,
                                                         kernels_dir: Path, k8s_spec: Callable[..., str]) -> None:
    """The token's Secret is made in the pod's own (per-kernel) namespace before the pod, holds the token under
    one key, and is deleted once the kernel has reported; the kernel keeps its token."""
    km = manager(kernels_dir, k8s_spec(shared_namespace=False, labels={"team": "data"}))
    seen: list[tuple[str, dict]] = []
    watcher = asyncio.ensure_future(secret_events(core, km.kernel_id, seen))
    try:
        await km.start_kernel()
        token = km.provisioner.launch_env["LAUNCH_TOKEN"]
        (pod,) = await pods_of(core, km.kernel_id)
        await asyncio.wait_for(asyncio.shield(watcher), 5)
    finally:
        watcher.cancel()
    try:
        assert [kind for kind, _ in seen] == ["ADDED", "DELETED"]
        secret = seen[0][1]
        assert secret["metadata"]["name"] == f"{pod.metadata.name}-launch"
        assert secret["metadata"]["namespace"] == pod.metadata.namespace != "default"
        assert secret["type"] == "Opaque" and secret["immutable"] is True
        assert secret["metadata"]["labels"] == {"team": "data", "kernel_id": km.kernel_id, "app": "kernelfleet",
                                                "component": "kernel", "kernelfleet.io/server": server_id_of()}
        assert secret["data"] == {"launch-token": base64.b64encode(token.encode()).decode()}
        assert_token_by_reference(core, pod, token)
        kc = await connect(km)
        try:  # the variable was resolved when the container started: the kernel does not need the Secret any more
            assert (await execute(kc, "6 * 7"))["result"] == "42"
        finally:
            kc.stop_channels()
    finally:
        await km.shutdown_kernel()
    assert await secrets_of(core, km.kernel_id) == []
