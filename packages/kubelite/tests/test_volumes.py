"""Volumes mounted for real (emptyDir, hostPath, configMap, secret), FailedMount until a named Secret exists, and
the scheduler's node affinity and taint filters with the default scheduler's FailedScheduling messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, watch

from kernelfleet.kubelite import KubeLite
from kernelfleet.kubelite.testing import pod_manifest

pytestmark = [pytest.mark.timeout(90)]


async def wait_phase(core: client.CoreV1Api, namespace: str, name: str, phases: set[str]) -> dict[str, Any]:
    w = watch.Watch()
    try:
        async for event in w.stream(core.list_namespaced_pod, namespace, field_selector=f"metadata.name={name}",
                                    timeout_seconds=60):
            pod = event["raw_object"]
            if (pod.get("status") or {}).get("phase") in phases:
                return pod
    finally:
        await w.close()
    raise AssertionError(f"pod {name} never reached {phases}")


async def first_event(core: client.CoreV1Api, namespace: str, name: str, reason: str) -> str:
    w = watch.Watch()
    try:
        async for event in w.stream(core.list_namespaced_event, namespace,
                                    field_selector=f"involvedObject.name={name}", timeout_seconds=60):
            if event["object"].reason == reason:
                return str(event["object"].message)
    finally:
        await w.close()
    raise AssertionError(f"no {reason} event for {name}")


async def test_volumes_are_mounted(core: client.CoreV1Api, namespace: str, image: str, tmp_path: Path) -> None:
    await core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {
        "greeting": "hello", "other": "x"}})
    host = tmp_path / "host"
    script = ("cat /cfg/renamed; echo; cat /sec/token; echo; echo scratch > /scratch/f && cat /scratch/f; "
              "echo from-pod > /host/made; ls /cfg; stat -c '%g %a' /scratch; touch /cfg/x 2>/dev/null || echo ro")
    pod = pod_manifest("vols", image, ["sh", "-c", script], securityContext={"fsGroup": 100}, volumes=[
        {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "greeting", "path": "renamed"}]}},
        {"name": "sec", "secret": {"secretName": "sec"}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "host", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}},
    ], container={"volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}, {"name": "sec", "mountPath": "/sec"},
                                   {"name": "scratch", "mountPath": "/scratch"},
                                   {"name": "host", "mountPath": "/host"}]})
    await core.create_namespaced_pod(namespace, pod)
    message = await first_event(core, namespace, "vols", "FailedMount")  # the Secret does not exist yet
    assert message == 'MountVolume.SetUp failed for volume "sec" : secret "sec" not found'
    await core.create_namespaced_secret(namespace, {"metadata": {"name": "sec"}, "stringData": {"token": "t0k"}})
    done = await wait_phase(core, namespace, "vols", {"Succeeded", "Failed"})
    logs = await core.read_namespaced_pod_log("vols", namespace)
    assert done["status"]["phase"] == "Succeeded", logs
    assert logs.split("\n") == ["hello", "t0k", "scratch", "renamed", "100 2777", "ro", ""]
    assert (host / "made").read_text() == "from-pod\n"


async def test_affinity_and_taints(kube: KubeLite, core: client.CoreV1Api, namespace: str, image: str) -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-1a"]}]}]}}}
    await core.create_namespaced_pod(namespace, pod_manifest("far", image, ["true"], affinity=affinity))
    message = await first_event(core, namespace, "far", "FailedScheduling")
    assert message == ("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: "
                       "0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
    kube.node.taints = [{"key": "dedicated", "value": "kernels", "effect": "NoSchedule"}]
    await core.create_namespaced_pod(namespace, pod_manifest("intolerant", image, ["true"]))
    message = await first_event(core, namespace, "intolerant", "FailedScheduling")
    assert message.startswith("0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: kernels}. ")
    here = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}}
    tolerant = pod_manifest("tolerant", image, ["true"], affinity=here, tolerations=[
        {"key": "dedicated", "operator": "Equal", "value": "kernels", "effect": "NoSchedule"}])
    await core.create_namespaced_pod(namespace, tolerant)
    assert (await wait_phase(core, namespace, "tolerant", {"Succeeded", "Failed"}))["status"]["phase"] == "Succeeded"
