"""Volumes, scheduling constraints and pull secrets carried end to end: the kernelspec's volumes are mounted for
real in the kernel's pod (the kernel, running as jovyan, reads and writes them), affinity the node does not
match fails the launch with the scheduler's message, tolerations let a kernel onto a tainted node, and image
pull secrets reach the pod."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from k8s_helpers import pods_of
from kf_testing import connect, execute, manager
from kubernetes_asyncio import client

from kernelfleet.kubelite import KubeLite
from kernelfleet.provisioners.base import LaunchError

pytestmark = pytest.mark.timeout(120)
MOUNTS = [{"name": "settings", "mountPath": "/etc/kernel-settings"}, {"name": "creds", "mountPath": "/var/creds"},
          {"name": "scratch", "mountPath": "/scratch"}, {"name": "shared", "mountPath": "/shared"}]


async def test_kernelspec_volumes_are_mounted(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                              k8s_spec: Callable[..., str], tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    await core.create_namespaced_config_map("default", {"metadata": {"name": "kernel-settings"},
                                                        "data": {"mode": "fast"}})
    await core.create_namespaced_secret("default", {"metadata": {"name": "kernel-creds"},
                                                    "stringData": {"db": "s3cr3t"}})
    volumes = [{"name": "settings", "configMap": {"name": "kernel-settings"}},
               {"name": "creds", "secret": {"secretName": "kernel-creds"}},
               {"name": "scratch", "emptyDir": {}},
               {"name": "shared", "hostPath": {"path": str(shared), "type": "Directory"}}]
    km = manager(kernels_dir, k8s_spec("vols", volumes=volumes, volume_mounts=MOUNTS, allow_host_path_volumes=True))
    try:
        await km.start_kernel()
        kc = await connect(km)
        try:
            code = ("import json, os\n"
                    "open('/scratch/x', 'w').write('1'); open('/shared/from-kernel', 'w').write('hi')\n"
                    "json.dumps([open('/etc/kernel-settings/mode').read(), open('/var/creds/db').read(),\n"
                    "            os.listdir('/scratch'), os.getuid()])")
            reply = await execute(kc, code)
            assert json.loads(ast.literal_eval(reply["result"])) == ["fast", "s3cr3t", ["x"], 1000]
        finally:
            kc.stop_channels()
        assert (shared / "from-kernel").read_text() == "hi"
    finally:
        await km.shutdown_kernel()
        await core.delete_namespaced_config_map("kernel-settings", "default")
        await core.delete_namespaced_secret("kernel-creds", "default")


async def test_unmatched_affinity_fails_with_the_schedulers_message(
        kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path, k8s_spec: Callable[..., str]) -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "accelerator", "operator": "Exists"}]}]}}}
    km = manager(kernels_dir, k8s_spec("gpu-only", affinity=affinity))
    with pytest.raises(LaunchError) as err:
        await km.start_kernel()
    message = str(err.value)
    assert km.kernel_id in message and "Unschedulable" in message
    assert "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector." in message
    assert await pods_of(core, km.kernel_id) == []


async def test_tolerations_and_pull_secrets_reach_the_pod(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                          k8s_spec: Callable[..., str]) -> None:
    kube.node.taints = [{"key": "dedicated", "value": "kernels", "effect": "NoSchedule"}]
    intolerant = manager(kernels_dir, k8s_spec("intolerant"))
    with pytest.raises(LaunchError, match=r"had untolerated taint \{dedicated: kernels\}"):
        await intolerant.start_kernel()
    tolerations = [{"key": "dedicated", "operator": "Equal", "value": "kernels", "effect": "NoSchedule"}]
    km = manager(kernels_dir, k8s_spec("tolerant", tolerations=tolerations, image_pull_secrets=["regcred"]))
    await km.start_kernel()
    try:
        (pod,) = await pods_of(core, km.kernel_id)
        assert [t.key for t in pod.spec.tolerations if t.key == "dedicated"] == ["dedicated"]
        assert [s.name for s in pod.spec.image_pull_secrets] == ["regcred"]
        events = await core.list_namespaced_event("default", field_selector=f"involvedObject.name={pod.metadata.name}")
        assert any(e.reason == "FailedToRetrieveImagePullSecret" and "(regcred)" in e.message for e in events.items)
    finally:
        await km.shutdown_kernel()
