"""What a start request may and may not put into a kernel pod, through AsyncKernelManager against kubelite, and a
kernelspec written for Gateway Provisioners (argv running scripts/launch_kubernetes.py, its own
scripts/kernel-pod.yaml.j2) working unchanged."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from k8s_helpers import assert_token_by_reference, pods_of
from kf_testing import connect, execute, manager
from kubernetes_asyncio import client

from kernelfleet.kubelite import KubeLite

pytestmark = pytest.mark.timeout(120)

INJECTIONS: list[tuple[dict[str, str], str]] = [
    ({"KERNEL_SERVICE_ACCOUNT_NAME": '"default\\"\n  hostPID: true\n  hostNetwork: true #"'}, "newline"),
    ({"KERNEL_SERVICE_ACCOUNT_NAME": 'default", "hostPID": true, "x": "'}, "not a valid Kubernetes name"),
    ({"KERNEL_SERVICE_ACCOUNT_NAME": "kube-admin"}, "allow_client_service_account is off"),
    ({"KERNEL_CPUS": '1"\n    securityContext: {privileged: true} #'}, "newline"),
    ({"KERNEL_CPUS": "1, privileged: true"}, "not a resource quantity"),
    ({"KERNEL_MEMORY": "1Gi\"}, \"hostPID\": true, \"x\": {\"y\": \""}, "not a resource quantity"),
    ({"KERNEL_MEMORY_LIMIT": "-1Gi"}, "not a resource quantity"),
    ({"KERNEL_GPUS": "1e9"}, "not a resource quantity"),
    ({"KERNEL_NAMESPACE": "kube-system"}, "allow_client_namespace is off"),
    ({"KERNEL_NAMESPACE": "Bad_Namespace"}, "not a valid Kubernetes name"),
    ({"KERNEL_NAMESPACE": "x" * 64}, "not a valid Kubernetes name"),
    ({"KERNEL_UID": "0"}, "prohibited"),
    ({"KERNEL_UID": "00"}, "plain decimal"),
    ({"KERNEL_UID": "+0"}, "plain decimal"),
    ({"KERNEL_UID": "0x0"}, "plain decimal"),
    ({"KERNEL_GID": "00"}, "plain decimal"),
    ({"KERNEL_GID": "0"}, "prohibited"),
    # Client volumes are off: refused by that setting before the value is parsed at all.
    ({"KERNEL_VOLUMES": '[{"name": "root", "hostPath": {"path": "/"}}]'}, "allow_client_volumes is off"),
    ({"KERNEL_VOLUMES": '[{"name": "data", "emptyDir": {}}]'}, "allow_client_volumes is off"),
    ({"KERNEL_VOLUME_MOUNTS": '{"name": "x"}'}, "allow_client_volumes is off"),
    ({"KERNEL_VOLUMES": "[" * 3000}, "allow_client_volumes is off"),
    ({"KERNEL_IMAGE": "attacker/miner:latest"}, "allow_client_image is off"),
]


@pytest.mark.parametrize(("env", "error"), INJECTIONS, ids=[next(iter(e)) + f"-{i}" for i, (e, _) in
                                                          enumerate(INJECTIONS)])
async def test_request_values_are_refused_before_any_pod(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                         k8s_spec: Callable[..., str], env: dict[str, str],
                                                         error: str) -> None:
    km = manager(kernels_dir, k8s_spec())
    with pytest.raises((ValueError, PermissionError)) as err:
        await km.start_kernel(env={**os.environ, "KERNEL_USERNAME": "alice", **env})
    assert error in str(err.value) and km.kernel_id in str(err.value)
    assert await pods_of(core, km.kernel_id) == []
    assert {n.metadata.name for n in (await core.list_namespace()).items} == {
        "default", "kube-system", "kube-public", "kube-node-lease"}


def yaml_alias_bomb(levels: int) -> str:
    """A YAML flow list of nine-fold nested aliases: ~300 bytes meaning 9**levels items to whatever walks them."""
    anchors = ["&a0 [x, x, x, x, x, x, x, x, x]"]
    anchors += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[[" + ", ".join(anchors) + "]]"


VOLUME_REQUESTS: list[tuple[dict[str, str], str]] = [
    ({"KERNEL_VOLUMES": '[{"name": "root", "hostPath": {"path": "/"}}]'}, "allow_host_path_volumes is off"),
    ({"KERNEL_VOLUMES": '[{"name": "root", "hostPath": {"path": "/"}}]'}, "(in KERNEL_VOLUMES)"),
    ({"KERNEL_VOLUME_MOUNTS": '[{"name": "x"}]'}, "(in KERNEL_VOLUME_MOUNTS)"),
    ({"KERNEL_VOLUME_MOUNTS": '{"name": "x"}'}, "KERNEL_VOLUME_MOUNTS must be a JSON list"),
    ({"KERNEL_VOLUMES": yaml_alias_bomb(7)}, "KERNEL_VOLUMES must be a JSON list of mappings: YAML aliases"),
    ({"KERNEL_VOLUME_MOUNTS": yaml_alias_bomb(7)}, "KERNEL_VOLUME_MOUNTS must be a JSON list of mappings: YAML"),
    ({"KERNEL_VOLUMES": "[" * 3000}, "KERNEL_VOLUMES must be a JSON list of mappings: nested deeper"),
    ({"KERNEL_VOLUMES": "- " * 2000}, "KERNEL_VOLUMES must be a JSON list of mappings: nested deeper"),
]


@pytest.mark.parametrize(("env", "error"), VOLUME_REQUESTS, ids=[f"{next(iter(e))}-{i}" for i, (e, _) in
                                                                enumerate(VOLUME_REQUESTS)])
async def test_request_volumes_are_checked_when_allowed(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                        k8s_spec: Callable[..., str], env: dict[str, str],
                                                        error: str) -> None:
    """With allow_client_volumes on, a request's volumes are parsed: a YAML alias bomb (a level-7 one meant ~60 MB
    and seconds of CPU once an error message str()ed it) or deep nesting (RecursionError out of pre_launch) is
    refused cheaply, and every refusal names the variable; no pod is created."""
    km = manager(kernels_dir, k8s_spec(allow_client_volumes=True))
    with pytest.raises((ValueError, PermissionError)) as err:
        await km.start_kernel(env={**os.environ, "KERNEL_USERNAME": "alice", **env})
    assert error in str(err.value) and km.kernel_id in str(err.value)
    assert await pods_of(core, km.kernel_id) == []


async def test_host_path_from_the_kernelspec_needs_the_trait(kube: KubeLite, core: client.CoreV1Api,
                                                            kernels_dir: Path, k8s_spec: Callable[..., str]) -> None:
    km = manager(kernels_dir, k8s_spec(volumes=[{"name": "etc", "hostPath": {"path": "/etc"}}]))
    with pytest.raises(ValueError, match="allow_host_path_volumes is off"):
        await km.start_kernel()
    assert await pods_of(core, km.kernel_id) == []


async def test_allowed_request_values_reach_the_pod(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                    k8s_spec: Callable[..., str]) -> None:
    name = k8s_spec(allow_client_volumes=True, allow_client_service_account=True, allow_client_namespace=True)
    await core.create_namespace({"metadata": {"name": "team-a"}})
    await core.create_namespaced_service_account("team-a", {"metadata": {"name": "analyst"}})
    km = manager(kernels_dir, name)
    long_user = "Alice.Smith@Example.COM-" + "x" * 60
    env = {**os.environ, "KERNEL_USERNAME": long_user, "KERNEL_NAMESPACE": "team-a",
           "KERNEL_SERVICE_ACCOUNT_NAME": "analyst", "KERNEL_CPUS": "100m", "KERNEL_MEMORY_LIMIT": "1Gi",
           "KERNEL_UID": "1234", "KERNEL_GID": "1234",
           "KERNEL_VOLUMES": json.dumps([{"name": "scratch", "emptyDir": {}}]),
           "KERNEL_VOLUME_MOUNTS": json.dumps([{"name": "scratch", "mountPath": "/scratch"}])}
    await km.start_kernel(env=env)
    try:
        (pod,) = await pods_of(core, km.kernel_id)
        assert pod.metadata.namespace == "team-a" and len(pod.metadata.name) <= 63
        assert pod.spec.service_account_name == "analyst"
        container = pod.spec.containers[0]
        assert container.resources.requests["cpu"] == "100m" and container.resources.limits["memory"] == "1Gi"
        assert pod.spec.security_context.run_as_user == 1234
        assert [v.name for v in pod.spec.volumes] == ["scratch"]
        kc = await connect(km)
        try:
            assert (await execute(kc, "import os; os.getuid()"))["result"] == "1234"
        finally:
            kc.stop_channels()
    finally:
        await km.shutdown_kernel(now=True)
        await core.delete_namespace("team-a")


GP_POD_TEMPLATE = """\
apiVersion: v1
kind: Pod
metadata:
  name: "{{ kernel_pod_name }}"
  namespace: "{{ kernel_namespace }}"
  labels:
    kernel_id: "{{ kernel_id }}"
    app: gateway-provisioners
    component: kernel
    source: kernel-pod.yaml
  annotations:
    cluster-autoscaler.kubernetes.io/safe-to-evict: "false"
spec:
  restartPolicy: Never
  serviceAccountName: "{{ kernel_service_account_name }}"
  {% if kernel_uid is defined or kernel_gid is defined %}
  securityContext:
    {% if kernel_uid is defined %}
    runAsUser: {{ kernel_uid | int }}
    {% endif %}
    {% if kernel_gid is defined %}
    runAsGroup: {{ kernel_gid | int }}
    {% endif %}
    fsGroup: 100
  {% endif %}
  containers:
  - image: "{{ kernel_image }}"
    name: "{{ kernel_pod_name }}"
    env:
    {% if kernel_cpus is defined or kernel_memory is defined or kernel_gpus is defined
          or kernel_cpus_limit is defined or kernel_memory_limit is defined or kernel_gpus_limit is defined %}
    resources:
      {% if kernel_cpus is defined or kernel_memory is defined or kernel_gpus is defined %}
      requests:
        {% if kernel_cpus is defined %}
        cpu: "{{ kernel_cpus }}"
        {% endif %}
        {% if kernel_memory is defined %}
        memory: "{{ kernel_memory }}"
        {% endif %}
        {% if kernel_gpus is defined %}
        nvidia.com/gpu: "{{ kernel_gpus }}"
        {% endif %}
      {% endif %}
      {% if kernel_cpus_limit is defined or kernel_memory_limit is defined or kernel_gpus_limit is defined %}
      limits:
        {% if kernel_cpus_limit is defined %}
        cpu: "{{ kernel_cpus_limit }}"
        {% endif %}
        {% if kernel_memory_limit is defined %}
        memory: "{{ kernel_memory_limit }}"
        {% endif %}
        {% if kernel_gpus_limit is defined %}
        nvidia.com/gpu: "{{ kernel_gpus_limit }}"
        {% endif %}
      {% endif %}
    {% endif %}
    {% if kernel_working_dir is defined %}
    workingDir: "{{ kernel_working_dir }}"
    {% endif %}
    volumeMounts:
    {% if kernel_volume_mounts is defined %}
      {% for volume_mount in kernel_volume_mounts %}
    - {{ volume_mount }}
      {% endfor %}
    {% endif %}
  volumes:
  {% if kernel_volumes is defined %}
    {% for volume in kernel_volumes %}
  - {{ volume }}
    {% endfor %}
  {% endif %}
"""


@pytest.fixture
def gp_kernelspec(kernels_dir: Path, kernel_image: str) -> str:
    """A kernelspec as GP's `jupyter k8s-spec install` wrote it (predecessor.md 4.4), with its scripts beside it."""
    spec_dir = kernels_dir / "gp_k8s_python"
    (spec_dir / "scripts").mkdir(parents=True)
    launcher = spec_dir / "scripts" / "launch_kubernetes.py"
    launcher.write_text("import sys\nsys.exit('GP launcher: never run by kubernetes-provisioner')\n")
    (spec_dir / "scripts" / "kernel-pod.yaml.j2").write_text(GP_POD_TEMPLATE)
    spec = {
        "argv": ["python", str(launcher), "--kernel-id", "{kernel_id}", "--port-range", "{port_range}",
                 "--response-address", "{response_address}", "--public-key", "{public_key}",
                 "--kernel-class-name", "ipykernel.ipkernel.IPythonKernel"],
        "env": {},
        "display_name": "Data Science 2.0",
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": True, "kernel_provisioner": {
            "provisioner_name": "kubernetes-provisioner",
            "config": {"image_name": kernel_image, "launch_timeout": 30}}},
        "kernel_protocol_version": "",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
    return "gp_k8s_python"


async def test_gp_written_kernelspec_works_unchanged(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                     gp_kernelspec: str) -> None:
    km = manager(kernels_dir, gp_kernelspec)
    await km.start_kernel(env={**os.environ, "KERNEL_USERNAME": "bob", "KERNEL_CPUS": "250m",
                               "KERNEL_MEMORY_LIMIT": "2Gi"})
    try:
        (pod,) = await pods_of(core, km.kernel_id)
        assert pod.metadata.labels["source"] == "kernel-pod.yaml"  # the kernelspec's own template made it
        assert pod.metadata.name == f"bob-{km.kernel_id}"
        container = pod.spec.containers[0]
        assert container.name == pod.metadata.name
        assert container.resources.requests["cpu"] == "250m" and container.resources.limits == {"memory": "2Gi"}
        assert pod.spec.security_context.run_as_user == 1000 and pod.spec.security_context.fs_group == 100
        env = {e.name: e.value for e in container.env}
        assert env["KERNEL_ID"] == km.kernel_id and env["KERNEL_CLASS_NAME"] == "ipykernel.ipkernel.IPythonKernel"
        assert "PATH" not in env and "KUBECONFIG" not in env  # the server's environment stays on the server
        assert_token_by_reference(core, pod, km.provisioner.launch_env["LAUNCH_TOKEN"])  # templates too
        kc = await connect(km)
        try:
            assert (await execute(kc, "import os; os.environ['KERNEL_POD_NAME']"))["result"] == repr(pod.metadata.name)
        finally:
            kc.stop_channels()
    finally:
        await km.shutdown_kernel()
    assert await pods_of(core, km.kernel_id) == []


async def test_gp_template_with_an_injection_is_refused(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                        gp_kernelspec: str) -> None:
    km = manager(kernels_dir, gp_kernelspec)
    with pytest.raises(ValueError, match="not a resource quantity"):
        await km.start_kernel(env={**os.environ, "KERNEL_USERNAME": "bob",
                                   "KERNEL_MEMORY": '1Gi" }, "hostPID": true, "x": { "y": "'})
    assert await pods_of(core, km.kernel_id) == []
