"""Warm pools on Kubernetes (``kubernetes-provisioner`` on kubelite): real standby pods of the image under test, the
real broker, jupyter_client's AsyncKernelManager. A claimed standby pod is relabelled as its kernel's; everything that
finds a cold kernel's pod (the kernel-pod watch, reattach, shutdown, the orphan sweep) finds it. Every wait is on an
event: the pool's change notifications, a cell's output, the test's own watch of the pods."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from k8s_helpers import pods_of, reattached, secrets_of
from kf_testing import connect, execute, interrupt_busy_cell, manager
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from pool_testing import WAIT, full, start_pooled, the_pool

from kernelfleet.kubelite import KubeLite
from kernelfleet.provisioners.leases import close_all
from kernelfleet.provisioners.pool import WarmPool
from kernelfleet.provisioners.pool.spec import LABEL_POOL, LABEL_STANDBY
from kernelfleet.provisioners.server_identity import LABEL_SERVER
from kernelfleet.provisioners.sweep import find_orphans, remove_orphans

pytestmark = pytest.mark.timeout(300)
NAMESPACE = "default"


@pytest.fixture(autouse=True)
async def closed_pools(kube: KubeLite) -> AsyncIterator[None]:
    """Each test ends with its pools closed (before the kube fixture checks that no pod, Secret or container is
    left): what a server's shutdown does."""
    yield
    await close_all()


@pytest.fixture
def pooled_spec(k8s_spec: Callable[..., str]) -> str:
    return k8s_spec("k8s_pooled", warm_pool_size=2)


def died(pool: WarmPool) -> None:
    """What a server's death does to its pool: the standbys' connections end, and nothing replaces them."""
    links = list(pool.idle)
    pool.idle.clear()
    pool.closed = True
    for link in links:
        link.drop()


async def read_pod(core: client.CoreV1Api, name: str) -> client.V1Pod | None:
    try:
        return await core.read_namespaced_pod(name, NAMESPACE)
    except ApiException as err:
        assert err.status == 404
        return None


async def pods_until(core: client.CoreV1Api, selector: str,
                     done: Callable[[dict[str, dict[str, Any]]], bool]) -> dict[str, dict[str, Any]]:
    """The pods ``selector`` picks, by name, once ``done`` holds for them (the test's own list and watch)."""
    listed = await core.list_namespaced_pod(NAMESPACE, label_selector=selector)
    pods = {p.metadata.name: core.api_client.sanitize_for_serialization(p) for p in listed.items}
    version = listed.metadata.resource_version
    async with asyncio.timeout(WAIT):
        while not done(pods):
            response = await core.list_namespaced_pod(NAMESPACE, label_selector=selector, watch=True,
                                                      resource_version=version, timeout_seconds=60,
                                                      _preload_content=False)
            try:
                while not done(pods) and (line := await response.content.readline()):
                    event = json.loads(line)
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "DELETED":
                        pods.pop(obj["metadata"]["name"], None)
                    elif event["type"] != "BOOKMARK":
                        pods[obj["metadata"]["name"]] = obj
            finally:
                response.release()
    return pods


async def test_pooled_kubernetes_kernel_lifecycle(
    kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path, pooled_spec: str,
) -> None:
    km = await start_pooled(kernels_dir, pooled_spec)
    pool, prov = the_pool(), km.provisioner
    name = prov.pod_name
    assert name.startswith("kf-standby-")
    (pod,) = await pods_of(core, km.kernel_id)  # found by the kernel_id label, as a cold kernel's pod
    labels = pod.metadata.labels
    assert pod.metadata.name == name and pod.metadata.uid == prov.pod_uid
    assert labels["kernel_id"] == km.kernel_id and labels["component"] == "kernel"
    assert labels[LABEL_SERVER] == prov.server_id and labels[LABEL_POOL] == pool.pool_id
    assert labels[LABEL_STANDBY].startswith("standby-")
    assert await secrets_of(core, km.kernel_id) == []  # the token came in the claim: no launch Secret
    standby_secrets = (await core.list_namespaced_secret(NAMESPACE, label_selector=f"{LABEL_STANDBY}="
                                                         f"{labels[LABEL_STANDBY]}")).items
    assert standby_secrets == []  # the registration token's Secret went once the standby's container ran
    info = await prov.get_provisioner_info()
    assert info["pod_name"] == name and info["owned"]["pod"] == {"name": name, "uid": pod.metadata.uid}

    kc = await connect(km)
    try:
        assert (await execute(kc, "1+1"))["result"] == "2"
        env = await execute(kc, "import os; print(os.environ.get('KERNEL_ID'), os.environ.get('KERNEL_POD_NAME'), "
                                "'KF_STANDBY_ID' in os.environ, 'LAUNCH_TOKEN' in os.environ)")
        assert env["stdout"].split() == [km.kernel_id, name, "False", "False"]
        await interrupt_busy_cell(km, kc)
        assert (await execute(kc, "6*7"))["result"] == "42"

        # the sweep lists the claimed pod under its kernel id; the pool's running standbys are a live server's
        await full(pool)
        orphans = await find_orphans(set(), server_id=prov.server_id, engines=["kubernetes"])
        assert {(o.kernel_id, o.object_id) for o in orphans} == {(km.kernel_id, pod.metadata.uid)}, orphans

        # reattach, as a restarted server would: a fresh manager and provisioner with only the saved info
        again = await reattached(km, kernels_dir, pooled_spec)
        assert again.provisioner.pod_name == name and await again.provisioner.poll() is None
        await again.provisioner.detach()

        await execute(kc, "x = 1")
        await km.restart_kernel()
    finally:
        kc.stop_channels()
    assert await read_pod(core, name) is None  # the claimed pod was deleted by uid, like a cold one
    kc = await connect(km)
    try:
        assert (await execute(kc, "'x' in globals()"))["result"] == "False"
    finally:
        kc.stop_channels()
    second = km.provisioner.pod_name
    assert second != name and pool.stats["claimed"] == 2, pool.stats  # the restart claimed a fresh standby
    await km.shutdown_kernel()
    assert await read_pod(core, second) is None and await pods_of(core, km.kernel_id) == []
    assert pool.stats["lost"] == 0 and pool.stats["failed"] == 0, pool.stats


async def test_request_env_and_working_dir_reach_the_pooled_pod(
    kube: KubeLite, kernels_dir: Path, k8s_spec: Callable[..., str],
) -> None:
    name = k8s_spec("k8s_pooled_dirs", warm_pool_size=1, mirror_working_dirs=True)
    km = await start_pooled(kernels_dir, name, env={**os.environ, "KERNEL_TEAM": "blue", "KERNEL_WORKING_DIR": "/tmp"})
    kc = await connect(km)
    try:
        reply = await execute(kc, "import os; (os.environ.get('KERNEL_TEAM'), os.getcwd())")
        assert reply["result"] == repr(("blue", "/tmp"))
    finally:
        kc.stop_channels()
    await km.shutdown_kernel(now=True)


async def test_requests_that_do_not_fit_a_standby(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                  pooled_spec: str) -> None:
    """A refused request consumes no standby; a pod the claim cannot make (other resources, a named pod) starts
    cold, as a cold kernel's pod."""
    km = await start_pooled(kernels_dir, pooled_spec)
    await km.shutdown_kernel(now=True)
    pool = the_pool()
    await full(pool)
    refused = manager(kernels_dir, pooled_spec)
    with pytest.raises(PermissionError, match=refused.kernel_id):
        await refused.start_kernel(env={**os.environ, "KERNEL_UID": "0"})
    for request in ({"KERNEL_CPUS": "100m"}, {"KERNEL_POD_NAME": "my-own-pod"}):
        cold = manager(kernels_dir, pooled_spec)
        await cold.start_kernel(env={**os.environ, **request})
        (pod,) = await pods_of(core, cold.kernel_id)
        assert LABEL_STANDBY not in pod.metadata.labels and not pod.metadata.name.startswith("kf-standby-")
        await cold.shutdown_kernel(now=True)
    assert pool.stats["claimed"] == 1 and len(pool.idle) == 2, pool.stats


async def test_a_deleted_standby_is_replaced(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                             pooled_spec: str) -> None:
    km = await start_pooled(kernels_dir, pooled_spec)
    await km.shutdown_kernel(now=True)
    pool = the_pool()
    await full(pool)
    victim = pool.idle[0].handle.name
    await core.delete_namespaced_pod(victim, NAMESPACE, grace_period_seconds=0)
    await asyncio.wait_for(pool.until(lambda p: p.stats["lost"] == 1 and len(p.idle) == 2), WAIT)
    assert victim not in {link.handle.name for link in pool.idle}
    assert pool.stats["failed"] == 0, pool.stats
    km = manager(kernels_dir, pooled_spec)
    await km.start_kernel()
    assert pool.stats["claimed"] == 2 and km.provisioner.pod_name != victim
    await km.shutdown_kernel(now=True)


async def test_sweep_of_an_orphaned_pooled_pod_and_of_a_dead_servers_standbys(
    kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path, pooled_spec: str,
) -> None:
    km = await start_pooled(kernels_dir, pooled_spec)
    prov, pool = km.provisioner, the_pool()
    server_id, claimed_pod = prov.server_id, prov.pod_name
    await full(pool)
    standbys = {link.handle.name for link in pool.idle}

    # a server that dies: its pool's connections end with its process, so its standbys exit (and nobody replaces
    # them); its claimed kernel's pod runs on, claimed by no session
    died(pool)
    def all_exited(pods: dict[str, dict[str, Any]]) -> bool:
        return set(pods) == standbys and all((p.get("status") or {}).get("phase") == "Succeeded" for p in pods.values())

    ended = await pods_until(core, f"{LABEL_POOL}={pool.pool_id},!kernel_id", all_exited)
    assert set(ended) == standbys
    orphans = await find_orphans(set(), server_id=server_id, engines=["kubernetes"])
    listed = {(o.kind, o.name.rpartition("/")[2]) for o in orphans}
    assert listed == {("pod", name) for name in standbys | {claimed_pod}}, listed
    assert {o.kernel_id for o in orphans if o.name.endswith(claimed_pod)} == {km.kernel_id}
    removals = await remove_orphans(orphans)
    assert [r.outcome.name for r in removals] == ["REMOVED"] * 3, removals
    for name in standbys | {claimed_pod}:
        assert await read_pod(core, name) is None
    await km.shutdown_kernel(now=True)  # its pod is gone already: nothing left to stop


async def test_idle_standbys_are_culled_after_the_ttl(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                      k8s_spec: Callable[..., str]) -> None:
    """Standbys idle past ``warm_pool_idle_ttl`` are deleted and not replaced until a start wants the pool again."""
    name = k8s_spec("k8s_pooled_ttl", warm_pool_size=2, warm_pool_idle_ttl=3)
    warmup = manager(kernels_dir, name)
    await warmup.start_kernel()
    await warmup.shutdown_kernel(now=True)
    pool = the_pool()
    await asyncio.wait_for(pool.until(lambda p: p.stats["culled"] >= 2 and not p.idle and not p.starting), WAIT)
    await pool.settled()
    assert await pods_until(core, f"{LABEL_POOL}={pool.pool_id}", lambda pods: not pods) == {}
    assert pool.stats["lost"] == 0 and pool.stats["failed"] == 0, pool.stats
