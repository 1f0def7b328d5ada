"""Admission as the API server's plugins do it: PodSecurity levels from namespace labels, LimitRange defaults and
bounds, ResourceQuota refusals, each answered with the real plugin's 403 message through kubernetes_asyncio."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.kubelite.pod_security import violations
from kernelfleet.kubelite.testing import pod_manifest

pytestmark = [pytest.mark.timeout(60)]

RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}


def restricted_pod(name: str, image: str) -> dict[str, Any]:
    pod = pod_manifest(name, image, ["sleep", "300"], securityContext=RESTRICTED_POD)
    pod["spec"]["containers"][0]["securityContext"] = dict(RESTRICTED_CONTAINER)
    return pod


async def label(core: client.CoreV1Api, namespace: str, labels: dict[str, str]) -> None:
    await core.patch_namespace(namespace, {"metadata": {"labels": labels}})


async def refused(make: Any) -> str:
    with pytest.raises(ApiException) as err:
        await make()
    assert err.value.status == 403
    body = json.loads(err.value.body)
    assert body["reason"] == "Forbidden" and body["code"] == 403
    return str(body["message"])


async def test_restricted_namespace_refuses_a_bare_pod_with_the_plugins_message(
        core: client.CoreV1Api, namespace: str, image: str) -> None:
    await label(core, namespace, {"pod-security.kubernetes.io/enforce": "restricted"})
    message = await refused(lambda: core.create_namespaced_pod(namespace, pod_manifest("bare", image, ["true"])))
    assert message == (
        'pods "bare" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
        '(container "main" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "main" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or '
        'container "main" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "main" '
        'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')
    assert (await core.list_namespaced_pod(namespace)).items == []  # refused: nothing stored
    created = await core.create_namespaced_pod(namespace, restricted_pod("ok", image))
    assert created.metadata.name == "ok"


async def test_enforce_version_and_baseline_level(core: client.CoreV1Api, namespace: str, image: str) -> None:
    await label(core, namespace, {"pod-security.kubernetes.io/enforce": "baseline",
                                  "pod-security.kubernetes.io/enforce-version": "v1.31"})
    await core.create_namespaced_pod(namespace, pod_manifest("plain", image, ["sleep", "300"]))  # baseline allows
    privileged = pod_manifest("priv", image, ["true"], hostNetwork=True)
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True, "capabilities": {
        "add": ["NET_ADMIN", "CHOWN"]}}
    message = await refused(lambda: core.create_namespaced_pod(namespace, privileged))
    assert message == (
        'pods "priv" is forbidden: violates PodSecurity "baseline:v1.31": non-default capabilities (container '
        '"main" must not include "NET_ADMIN" in securityContext.capabilities.add), host namespaces '
        '(hostNetwork=true), privileged (container "main" must not set securityContext.privileged=true)')


def test_restricted_checks_name_every_offender() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {
        "securityContext": {"runAsUser": 0, "seccompProfile": {"type": "Unconfined"}},
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}, {"name": "scratch", "emptyDir": {}}],
        "containers": [{"name": "a", "securityContext": {**RESTRICTED_CONTAINER, "runAsNonRoot": False}},
                       {"name": "b", "securityContext": {"allowPrivilegeEscalation": True}}]}}
    found = dict(violations(pod, "restricted"))
    assert found["allowPrivilegeEscalation != false"] == \
        'container "b" must set securityContext.allowPrivilegeEscalation=false'
    assert found["restricted volume types"] == 'volume "host" uses restricted volume type "hostPath"'
    assert found["runAsNonRoot != true"] == ('container "a" must not set securityContext.runAsNonRoot=false; '
                                             'pod or container "b" must set securityContext.runAsNonRoot=true')
    assert found["runAsUser=0"] == "pod must not set runAsUser=0"
    assert found["seccompProfile"] == 'pod must not set securityContext.seccompProfile.type to "Unconfined"'
    assert "hostPath volumes" not in found  # restricted's volume check replaces baseline's
    assert dict(violations(pod, "baseline")) == {
        "hostPath volumes": 'volume "host"',
        "seccompProfile": 'pod must not set securityContext.seccompProfile.type to "Unconfined"'}
    assert violations(pod, "privileged") == []


async def test_limit_range_defaults_and_maximum(core: client.CoreV1Api, namespace: str, image: str) -> None:
    await core.create_namespaced_limit_range(namespace, {"metadata": {"name": "limits"}, "spec": {"limits": [{
        "type": "Container", "default": {"memory": "256Mi", "cpu": "500m"}, "defaultRequest": {"memory": "128Mi"},
        "max": {"memory": "1Gi"}}]}})
    pod = await core.create_namespaced_pod(namespace, pod_manifest("defaulted", image, ["sleep", "300"]))
    resources = pod.spec.containers[0].resources
    assert resources.limits == {"memory": "256Mi", "cpu": "500m"}
    assert resources.requests == {"memory": "128Mi", "cpu": "500m"}
    assert pod.status.qos_class == "Burstable"
    big = pod_manifest("big", image, ["true"])
    big["spec"]["containers"][0]["resources"] = {"limits": {"memory": "2Gi"}}
    message = await refused(lambda: core.create_namespaced_pod(namespace, big))
    assert message == 'pods "big" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi'


async def test_resource_quota_refusals(core: client.CoreV1Api, namespace: str, image: str) -> None:
    await core.create_namespaced_resource_quota(namespace, {"metadata": {"name": "kernels"}, "spec": {"hard": {
        "pods": "1", "limits.memory": "1Gi"}}})
    unlimited = pod_manifest("unlimited", image, ["true"])
    message = await refused(lambda: core.create_namespaced_pod(namespace, unlimited))
    assert message == 'pods "unlimited" is forbidden: failed quota: kernels: must specify limits.memory for: main'
    first = pod_manifest("first", image, ["sleep", "300"])
    first["spec"]["containers"][0]["resources"] = {"limits": {"memory": "512Mi"}}
    await core.create_namespaced_pod(namespace, first)
    second = pod_manifest("second", image, ["true"])
    second["spec"]["containers"][0]["resources"] = {"limits": {"memory": "768Mi"}}
    message = await refused(lambda: core.create_namespaced_pod(namespace, second))
    assert message == ('pods "second" is forbidden: exceeded quota: kernels, requested: limits.memory=768Mi,pods=1, '
                       'used: limits.memory=512Mi,pods=1, limited: limits.memory=1Gi,pods=1')
