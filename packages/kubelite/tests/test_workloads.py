"""kubelite's minimal workload controllers (workloads.py) and the in-cluster access every pod gets (incluster.py),
observed through the kubernetes_asyncio client: a Deployment keeps its replicas as owned pods, replaces a deleted
one, recreates them on a template change and takes them along when deleted; a DaemonSet runs one pod; a Service gets
a clusterIP; a pod finds its service-account token, CA and namespace where Kubernetes puts them, and the token
authenticates as the pod's ServiceAccount."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.kubelite import KubeLite
from kernelfleet.kubelite.testing import pod_manifest

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]
LABELS = {"app": "web"}


def deployment(image: str, replicas: int = 2, command: str = "sleep 300") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": LABELS},
                     "template": {"metadata": {"labels": LABELS},
                                  "spec": {"terminationGracePeriodSeconds": 0, "containers": [
                                      {"name": "main", "image": image, "command": ["sh", "-c", command]}]}}}}


async def until_pods(core: client.CoreV1Api, namespace: str, selector: str,
                     done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """Follow the selected pods with a watch until ``done(pods)`` holds for the current set."""
    listed = await core.list_namespaced_pod(namespace, label_selector=selector)
    pods = {p.metadata.name: core.api_client.sanitize_for_serialization(p) for p in listed.items}
    if done(list(pods.values())):
        return list(pods.values())
    response = await core.list_namespaced_pod(namespace, label_selector=selector, watch=True, timeout_seconds=60,
                                              resource_version=listed.metadata.resource_version,
                                              _preload_content=False)
    try:
        while line := await response.content.readline():
            event = json.loads(line)
            obj = event["object"]
            if event["type"] == "DELETED":
                pods.pop(obj["metadata"]["name"], None)
            else:
                pods[obj["metadata"]["name"]] = obj
            if done(list(pods.values())):
                return list(pods.values())
    finally:
        response.release()
    raise AssertionError(f"the pods never reached the expected state: {sorted(pods)}")


def running(count: int) -> Callable[[list[dict[str, Any]]], bool]:
    def check(pods: list[dict[str, Any]]) -> bool:
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return len(live) == count and all((p.get("status") or {}).get("phase") == "Running" for p in live) \
            and len(pods) == count
    return check


async def test_deployment_keeps_its_replicas_as_owned_pods(api: client.ApiClient, core: client.CoreV1Api,
                                                            namespace: str, image: str) -> None:
    apps = client.AppsV1Api(api)
    created = await apps.create_namespaced_deployment(namespace, deployment(image))
    assert created.metadata.generation == 1
    pods = await until_pods(core, namespace, "app=web", running(2))
    for pod in pods:
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == \
            ("Deployment", "web", created.metadata.uid, True)
        assert pod["metadata"]["name"].startswith(f"web-{pod['metadata']['labels']['pod-template-hash']}-")
    status = (await apps.read_namespaced_deployment("web", namespace)).status
    assert (status.replicas, status.ready_replicas, status.available_replicas) == (2, 2, 2)
    assert [(c.type, c.status) for c in status.conditions] == [("Available", "True")]

    # A deleted pod is replaced.
    first = pods[0]["metadata"]["name"]
    await core.delete_namespaced_pod(first, namespace, grace_period_seconds=0)
    replaced = await until_pods(core, namespace, "app=web", running(2))
    assert first not in {p["metadata"]["name"] for p in replaced}

    # A template change recreates the pods (Recreate); scaling down keeps one.
    body = deployment(image, replicas=1, command="sleep 301")
    await apps.patch_namespaced_deployment("web", namespace, {"spec": body["spec"]})
    new = await until_pods(core, namespace, "app=web", running(1))
    assert new[0]["spec"]["containers"][0]["command"][-1] == "sleep 301"
    assert new[0]["metadata"]["name"] not in {p["metadata"]["name"] for p in replaced}
    assert (await apps.read_namespaced_deployment("web", namespace)).status.observed_generation == 2

    # Deleting the Deployment deletes its pods (ownerReferences' garbage collection).
    await apps.delete_namespaced_deployment("web", namespace)
    await until_pods(core, namespace, "app=web", lambda pods: not pods)


async def test_daemonset_runs_one_pod_on_the_node(api: client.ApiClient, core: client.CoreV1Api, namespace: str,
                                                  image: str) -> None:
    apps = client.AppsV1Api(api)
    body = copy.deepcopy(deployment(image))
    body["kind"] = "DaemonSet"
    body["metadata"]["name"] = "puller"
    del body["spec"]["replicas"]
    created = await apps.create_namespaced_daemon_set(namespace, body)
    pods = await until_pods(core, namespace, "app=web", running(1))
    assert pods[0]["metadata"]["ownerReferences"][0]["uid"] == created.metadata.uid
    assert pods[0]["spec"]["nodeName"] == "kubelite"
    status = (await apps.read_namespaced_daemon_set("puller", namespace)).status
    assert (status.desired_number_scheduled, status.number_ready) == (1, 1)
    await apps.delete_namespaced_daemon_set("puller", namespace)
    await until_pods(core, namespace, "app=web", lambda pods: not pods)


async def test_service_gets_a_cluster_ip(core: client.CoreV1Api, namespace: str) -> None:
    spec = {"selector": LABELS, "ports": [{"name": "http", "port": 8888}]}
    one = await core.create_namespaced_service(namespace, {"metadata": {"name": "one"}, "spec": spec})
    two = await core.create_namespaced_service(namespace, {"metadata": {"name": "two"}, "spec": spec})
    headless = await core.create_namespaced_service(namespace, {"metadata": {"name": "drivers"},
                                                                "spec": {**spec, "clusterIP": "None"}})
    assert one.spec.cluster_ip.startswith("10.96.") and two.spec.cluster_ip.startswith("10.96.")
    assert one.spec.cluster_ip != two.spec.cluster_ip
    assert (one.spec.type, one.spec.ports[0].target_port, one.spec.ports[0].protocol) == ("ClusterIP", 8888, "TCP")
    assert headless.spec.cluster_ip == "None"
    with pytest.raises(ApiException) as err:
        await core.create_namespaced_service(namespace, {"metadata": {"name": "three"},
                                                         "spec": {**spec, "clusterIP": one.spec.cluster_ip}})
    assert err.value.status == 422 and "provided IP is already allocated" in err.value.body


async def test_pods_get_their_service_account_token_and_the_api_address(
        kube: KubeLite, core: client.CoreV1Api, namespace: str, image: str, tmp_path: Path) -> None:
    await core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    path = "/var/run/secrets/kubernetes.io/serviceaccount"
    script = (f"cat {path}/namespace; echo; echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; "
              f"cat {path}/token; echo; head -n 1 {path}/ca.crt; ls -ln {path}/token")
    await core.create_namespaced_pod(namespace, pod_manifest(
        "sa", image, ["sh", "-c", script], serviceAccountName="reader",
        securityContext={"runAsUser": 1000, "runAsGroup": 100}))
    off = pod_manifest("off", image, ["sh", "-c", f"ls {path} 2>&1; echo host=$KUBERNETES_SERVICE_HOST"],
                       automountServiceAccountToken=False)
    await core.create_namespaced_pod(namespace, off)
    for name in ("sa", "off"):
        await until_pods(core, namespace, "app=kubelite-test",
                         lambda pods, name=name: any(p["metadata"]["name"] == name and
                                                     (p.get("status") or {}).get("phase") == "Succeeded"
                                                     for p in pods))
    lines = (await core.read_namespaced_pod_log("sa", namespace)).splitlines()
    assert kube.pod_network is not None and kube.node.api_access is not None
    assert lines[0] == namespace
    assert lines[1] == f"{kube.pod_network.gateway}:{kube.node.api_access.pod_network_port}"
    assert lines[3] == "-----BEGIN CERTIFICATE-----"
    assert lines[4].split()[0] == "-rw-r--r--"  # readable by the pod's non-root user
    # The token is the ServiceAccount's: the API names that user when it refuses it something.
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kube.write_kubeconfig(tmp_path / "reader", token=lines[2])),
                                  client_configuration=cfg)
    async with client.ApiClient(configuration=cfg) as as_reader:
        with pytest.raises(ApiException) as err:
            await client.CoreV1Api(as_reader).list_namespaced_secret(namespace)
    assert err.value.status == 403
    assert f'User "system:serviceaccount:{namespace}:reader" cannot list resource "secrets"' in \
        json.loads(err.value.body)["message"]
    assert (await core.read_namespaced_pod_log("off", namespace)).splitlines() == [
        f"ls: {path}: No such file or directory", "host="]
    for name in ("sa", "off"):
        await core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)

