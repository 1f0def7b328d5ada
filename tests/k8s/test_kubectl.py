"""kubelite checked by a client nobody here wrote: kubectl (client-go) over HTTPS with kubelite's kubeconfigs applies
the shipped RBAC manifests and a kernel pod as ``build_pod`` makes it, gets/describes/logs/deletes it, follows it with
``get -w``, and answers ``auth can-i`` for the server's service account and an unprivileged user as the RBAC rules
say; a RoleBinding the server's account may not grant is refused with the API server's escalation message."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import aiodocker
import pytest
import yaml
from kubernetes_asyncio import client

from kernelfleet.kubelite import KubeLite
from kernelfleet.kubelite.testing import ensure_image
from kernelfleet.provisioners.k8s import rbac
from kernelfleet.provisioners.k8s.pod import PodSettings, build_pod

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"


def kubectl_binary() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is not installed: run tools/setup-machine (Debian package kubernetes-client)")
    return found


async def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True) -> tuple[int, str]:
    """Run kubectl with ``kubeconfig``; (exit status, stdout + stderr)."""
    proc = await asyncio.create_subprocess_exec(
        kubectl_binary(), "--kubeconfig", str(kubeconfig), *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), 60)
    text = out.decode()
    assert not check or proc.returncode == 0, f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{text}"
    assert proc.returncode is not None
    return proc.returncode, text


async def can_i(kubeconfig: Path, *args: str) -> bool:
    status, out = await kubectl(kubeconfig, "auth", "can-i", *args, check=False)
    answer = out.strip().splitlines()[-1]  # after any warning (a cluster-scoped resource with a context namespace)
    assert answer in ("yes", "no"), out
    return status == 0 and answer == "yes"


async def test_kubectl_applies_the_rbac_and_can_i_follows_it(kube: KubeLite, tmp_path: Path) -> None:
    admin = tmp_path / "kubeconfig"
    for variant in rbac.VARIANTS:
        path = str(MANIFESTS / f"rbac-{variant}.yaml")
        _, out = await kubectl(admin, "apply", "-f", path)
        assert "kernelfleet-server created" in out, out
        _, again = await kubectl(admin, "apply", "-f", path)
        assert "created" not in again and "unchanged" in again, again

    try:
        await check_permissions(kube, tmp_path)
    finally:
        for variant in rbac.VARIANTS:  # --wait: kubectl follows each namespace until the API has deleted it
            await kubectl(admin, "delete", "--ignore-not-found", "-f", str(MANIFESTS / f"rbac-{variant}.yaml"))
    api = await _api(admin)
    try:
        names = {n.metadata.name for n in (await client.CoreV1Api(api).list_namespace()).items}
    finally:
        await api.close()
    assert not {"kernelfleet", "kernels"} & names


async def check_permissions(kube: KubeLite, tmp_path: Path) -> None:
    server = kube.write_kubeconfig(tmp_path / "server", token=kube.service_account_token("kernelfleet", "kernelfleet"))
    assert await can_i(server, "create", "pods", "-n", "kernels")
    assert await can_i(server, "get", "pods", "--subresource=log", "-n", "kernels")
    assert await can_i(server, "watch", "pods", "-n", "some-kernel-namespace")  # the ClusterRole
    assert await can_i(server, "bind", "clusterroles/kernel-controller")
    assert not await can_i(server, "bind", "clusterroles/cluster-admin")
    assert not await can_i(server, "list", "secrets", "-n", "kernels")  # nobody lists the launch Secrets
    assert not await can_i(server, "update", "pods", "-n", "kernels")
    assert not await can_i(server, "create", "clusterrolebindings")
    assert await can_i(server, "get", "/version")
    _, listed = await kubectl(server, "auth", "can-i", "--list", "-n", "kernels")
    assert "pods/log" in listed and "secrets" in listed, listed

    alice = kube.write_kubeconfig(tmp_path / "alice", token=kube.user_token("alice", ("staff",)))
    assert not await can_i(alice, "get", "pods", "-n", "kernels")
    status, out = await kubectl(alice, "get", "pods", "-n", "kernels", check=False)
    assert status != 0
    assert ('Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API group '
            '"" in the namespace "kernels"') in out, out

    # The server's account may create RoleBindings, but grant only kernel-controller (bind) or what it holds.
    status, out = await kubectl(server, "create", "-f", "-", stdin=binding("grab", "cluster-admin"), check=False)
    assert status != 0
    assert ('rolebindings.rbac.authorization.k8s.io "grab" is forbidden: user '
            '"system:serviceaccount:kernelfleet:kernelfleet" (groups=["system:serviceaccounts" '
            '"system:serviceaccounts:kernelfleet" "system:authenticated"]) is attempting to grant RBAC permissions '
            'not currently held:') in out, out
    _, out = await kubectl(server, "create", "-f", "-", stdin=binding("kernel", "kernel-controller"))
    assert "rolebinding.rbac.authorization.k8s.io/kernel created" in out


def binding(name: str, cluster_role: str) -> str:
    """A RoleBinding of ``cluster_role`` to the kernels' default service account (``kubectl create rolebinding``
    would send it as protobuf, which kubelite does not decode: see docs/kubelite.md)."""
    return yaml.safe_dump({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": "kernels"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "kernels"}]})


async def _api(kubeconfig: Path) -> client.ApiClient:
    from kubernetes_asyncio import config

    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


async def test_kubectl_runs_a_kernel_pod(kube: KubeLite, tmp_path: Path) -> None:
    """The pod build_pod makes (its image and command swapped for busybox's), through apply/get/describe/logs,
    ``get -w`` and delete."""
    admin = tmp_path / "kubeconfig"
    docker = aiodocker.Docker()
    try:
        image = await ensure_image(docker)
    finally:
        await docker.close()
    pod = build_pod(PodSettings(name="kernel-demo", namespace="default", kernel_id="demo", image=image,
                                env={"KERNEL_ID": "demo"}, uid=1000, gid=100, termination_grace_period=2))
    pod["spec"]["containers"][0]["command"] = ["sh", "-c", "echo kernel demo up; sleep 3600"]
    manifest = yaml.safe_dump(pod)
    _, out = await kubectl(admin, "apply", "-f", "-", stdin=manifest)
    assert "pod/kernel-demo created" in out, out
    await kubectl(admin, "wait", "--for=condition=Ready", "pod/kernel-demo", "--timeout=30s")

    _, out = await kubectl(admin, "get", "pods", "-l", "kernel_id=demo")
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] and row.split()[:4] == [
        "kernel-demo", "1/1", "Running", "0"], out
    _, out = await kubectl(admin, "get", "pod", "kernel-demo", "-o", "json")
    assert json.loads(out)["spec"]["securityContext"]["fsGroup"] == 100
    _, out = await kubectl(admin, "describe", "pod", "kernel-demo")
    assert ["Status:", "Running"] in [line.split() for line in out.splitlines()], out
    assert "Started container kernel" in out, out
    _, out = await kubectl(admin, "logs", "kernel-demo")
    assert out.strip() == "kernel demo up"

    watcher = await asyncio.create_subprocess_exec(
        kubectl_binary(), "--kubeconfig", str(admin), "get", "pods", "-w", "--output-watch-events",
        "-l", "kernel_id=demo", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        assert watcher.stdout is not None
        first = await asyncio.wait_for(watcher.stdout.readline(), 30)
        assert b"EVENT" in first  # the header: the watch is open
        await asyncio.wait_for(watcher.stdout.readline(), 30)  # the ADDED row of the running pod
        await kubectl(admin, "delete", "pod", "kernel-demo", "--wait=false")
        seen = b""
        while b"DELETED" not in seen:
            line = await asyncio.wait_for(watcher.stdout.readline(), 30)
            assert line, f"the watch ended early:\n{seen.decode()}"
            seen += line
        assert b"Terminating" in seen, seen.decode()
    finally:
        watcher.terminate()
        await watcher.wait()
    status, out = await kubectl(admin, "get", "pod", "kernel-demo", check=False)
    assert status != 0 and 'pods "kernel-demo" not found' in out
