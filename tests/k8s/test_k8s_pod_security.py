"""Kernel pods on a namespace that enforces the Pod Security Standards' "restricted" level, as a locked-down
cluster does: built pods start there; a template that asks for more, or a launch over the namespace's
ResourceQuota, is refused by the API server, and the user sees its message with the kernel id."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from k8s_helpers import pods_of, refused_launch
from kf_testing import connect, execute, manager
from kubernetes_asyncio import client

from kernelfleet.kubelite import KubeLite

pytestmark = pytest.mark.timeout(120)

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
ESCALATING_TEMPLATE = """\
apiVersion: v1
kind: Pod
metadata:
  name: "{{ kernel_pod_name }}"
spec:
  restartPolicy: Never
  containers:
  - name: kernel
    image: "{{ kernel_image }}"
    securityContext:
      allowPrivilegeEscalation: true
"""


async def test_kernel_runs_in_a_restricted_namespace(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                     k8s_spec: Callable[..., str]) -> None:
    await core.patch_namespace("default", {"metadata": {"labels": RESTRICTED}})
    km = manager(kernels_dir, k8s_spec())
    await km.start_kernel()
    try:
        (pod,) = await pods_of(core, km.kernel_id)
        security, container = pod.spec.security_context, pod.spec.containers[0].security_context
        assert security.run_as_non_root and security.seccomp_profile.type == "RuntimeDefault"
        assert (security.run_as_user, security.run_as_group, security.fs_group) == (1000, 100, 100)
        assert container.allow_privilege_escalation is False and container.capabilities.drop == ["ALL"]
        kc = await connect(km)
        try:
            reply = await execute(kc, "import os; (os.getuid(), os.getgid())")
            assert reply["result"] == "(1000, 100)"
        finally:
            kc.stop_channels()
    finally:
        await km.shutdown_kernel()


async def test_template_that_violates_restricted_is_refused(kube: KubeLite, core: client.CoreV1Api,
                                                            kernels_dir: Path, tmp_path: Path,
                                                            k8s_spec: Callable[..., str]) -> None:
    await core.patch_namespace("default", {"metadata": {"labels": RESTRICTED}})
    template = tmp_path / "escalating.yaml.j2"
    template.write_text(ESCALATING_TEMPLATE)
    message = await refused_launch(manager(kernels_dir, k8s_spec("escalating", pod_template=str(template))), core)
    assert 'is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container ' \
           '"kernel" must set securityContext.allowPrivilegeEscalation=false)' in message
    assert "unrestricted capabilities" not in message  # what the template left unset was filled in


async def test_opting_out_of_restricted(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                        k8s_spec: Callable[..., str]) -> None:
    """With the kernelspec's opt-out the pod is what it was before, and a restricted namespace refuses it."""
    await core.patch_namespace("default", {"metadata": {"labels": RESTRICTED}})
    message = await refused_launch(manager(kernels_dir, k8s_spec("unrestricted", pod_security_restricted=False)), core)
    assert "runAsNonRoot != true" in message and "seccompProfile" in message


async def test_resource_quota_exceeded_is_reported(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                   k8s_spec: Callable[..., str]) -> None:
    await core.create_namespaced_resource_quota("default", {"metadata": {"name": "kernels"}, "spec": {"hard": {
        "limits.memory": "1Gi"}}})
    try:
        km = manager(kernels_dir, k8s_spec("greedy", resources={"limits": {"memory": "2Gi"}}))
        message = await refused_launch(km, core)
        assert "exceeded quota: kernels, requested: limits.memory=2Gi, used: limits.memory=0, limited: " \
               "limits.memory=1Gi" in message
    finally:
        await core.delete_namespaced_resource_quota("kernels", "default")
