"""What Spark on Kubernetes asks of the API server and the kubelet, checked with the real client and real pods:
server-side apply (fabric8's ``serverSideApply`` of the driver's Service and ConfigMap), ``env[].valueFrom.fieldRef``
(the driver binds to ``status.podIP``, known before its container starts) and Service names inside pods (executors
reach ``<app>-driver-svc.<namespace>.svc``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubernetes_asyncio import client, watch

from kernelfleet.kubelite import KubeLite
from kernelfleet.kubelite.network import PodIPs
from kernelfleet.kubelite.pod_dns import names_of, selected_ip

pytestmark = pytest.mark.timeout(90)


async def apply(api: client.ApiClient, path: str, body: dict[str, Any], manager: str = "fabric8") -> tuple[int, Any]:
    """A server-side apply as fabric8 sends it (JSON body, application/apply-patch+yaml, force); (status, body)."""
    try:
        data, status, _ = await api.call_api(
            path, "PATCH", query_params=[("fieldManager", manager), ("force", "true")],
            header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
            body=body, auth_settings=["BearerToken"], response_types_map={200: "object", 201: "object"})
    except client.ApiException as err:
        return err.status, json.loads(err.body)
    return status, data


async def test_server_side_apply_creates_then_merges(api: client.ApiClient, core: client.CoreV1Api,
                                                     namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/spark-conf"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "spark-conf", "namespace": namespace},
            "data": {"spark.properties": "a=1"}}
    status, created = await apply(api, path, body)
    assert status == 201 and created["data"] == {"spark.properties": "a=1"}
    body["data"] = {"spark.properties": "a=2", "log4j.properties": "x"}
    status, updated = await apply(api, path, body)
    assert status == 200 and updated["data"] == body["data"]
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert (await core.read_namespaced_config_map("spark-conf", namespace)).data == body["data"]
    status, refused = await apply(api, path, {**body, "metadata": {"name": "other"}})
    assert status == 400 and "does not match" in refused["message"]


def test_pod_ips_are_handed_out_and_given_back() -> None:
    ips = PodIPs("10.9.0.0/29", "10.9.0.1")
    taken = [ips.allocate() for _ in range(5)]
    assert taken == ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
    with pytest.raises(RuntimeError, match="no free address"):
        ips.allocate()
    ips.release("10.9.0.4")
    assert ips.allocate() == "10.9.0.4"


def test_service_names_and_selection() -> None:
    assert names_of("app-driver-svc", "ns") == ["app-driver-svc", "app-driver-svc.ns", "app-driver-svc.ns.svc",
                                                "app-driver-svc.ns.svc.cluster.local"]
    pods = [{"metadata": {"name": "a", "labels": {"app": "x"}}, "status": {"phase": "Pending", "podIP": "10.0.0.2"}},
            {"metadata": {"name": "b", "labels": {"app": "x"}}, "status": {"phase": "Running", "podIP": "10.0.0.3"}}]
    assert selected_ip({"app": "x"}, pods) == "10.0.0.3"
    assert selected_ip({"app": "y"}, pods) is None and selected_ip({}, pods) is None


async def until_phase(core: client.CoreV1Api, namespace: str, name: str, phases: tuple[str, ...]) -> client.V1Pod:
    """The pod once it is in one of ``phases``, as a watch of it reports."""
    w = watch.Watch()
    async with asyncio.timeout(30):
        async for event in w.stream(core.list_namespaced_pod, namespace, field_selector=f"metadata.name={name}"):
            if event["object"].status.phase in phases:
                w.stop()
                return event["object"]
    raise AssertionError(f"the watch of pod {name} ended")


async def test_field_refs_and_service_names_in_pods(kube: KubeLite, core: client.CoreV1Api, namespace: str,
                                                    image: str) -> None:
    """A "driver" pod sees its own IP and name through fieldRef; a Service selects it; a later "executor" pod
    resolves the Service's names to the driver's IP (its /etc/hosts)."""
    driver = {"metadata": {"name": "driver", "labels": {"spark-role": "driver", "app": "a1"}}, "spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": image, "command": ["sleep", "60"], "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "ROLE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['spark-role']"}}}]}]}}
    await core.create_namespaced_pod(namespace, driver)
    await core.create_namespaced_service(namespace, {"metadata": {"name": "a1-driver-svc"}, "spec": {
        "clusterIP": "None", "selector": {"app": "a1", "spark-role": "driver"},
        "ports": [{"name": "driver-rpc-port", "port": 7078}]}})
    running = await until_phase(core, namespace, "driver", ("Running", "Succeeded", "Failed"))
    assert running.status.phase == "Running" and running.status.pod_ip
    assert kube.docker is not None
    (container,) = await kube.docker.containers.list(filters={"label": ["io.kubernetes.pod.name=driver",
                                                                        f"kubelite.instance={kube.node.instance}"]})
    env = dict(e.split("=", 1) for e in (await container.show())["Config"]["Env"])
    assert env["POD_IP"] == running.status.pod_ip and env["POD_NAME"] == "driver" and env["ROLE"] == "driver"

    executor = {"metadata": {"name": "executor"}, "spec": {"restartPolicy": "Never", "containers": [{
        "name": "c", "image": image, "command": ["sh", "-c", f"grep -w a1-driver-svc.{namespace}.svc /etc/hosts"]}]}}
    await core.create_namespaced_pod(namespace, executor)
    pod = await until_phase(core, namespace, "executor", ("Succeeded", "Failed"))
    assert pod.status.phase == "Succeeded"
    log = await core.read_namespaced_pod_log("executor", namespace)
    assert log.split()[0] == running.status.pod_ip
    for name in ("driver", "executor"):
        await core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
