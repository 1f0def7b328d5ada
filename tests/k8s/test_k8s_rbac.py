"""The shipped least-privilege RBAC (deploy/kubernetes/*.yaml, printed by ``jupyter k8s-spec rbac``) is exactly
enough: applied to kubelite, whose RBAC authorizer evaluates it as a real API server does, the server's service
account runs every lifecycle path (start, execute, interrupt, restart, shutdown, a failed launch) in both layouts;
and each verb of the server's role, removed, breaks a named operation with the API server's 403 in what the user
sees (the launch error or the server's log)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiodocker
import pytest
import yaml
from k8s_helpers import TEMPLATE_KINDS, TEMPLATE_WITH_OBJECTS, pods_of, secrets_of
from kf_testing import connect, execute, interrupt_busy_cell, manager
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.kubelite import KubeLite
from kernelfleet.kubelite.testing import ensure_image
from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.k8s import rbac
from kernelfleet.provisioners.k8s.provisioner import wait_namespace_gone
from kernelfleet.provisioners.leases import close_all
from kernelfleet.provisioners.pool import pools

pytestmark = pytest.mark.timeout(150)
ROOT = Path(__file__).resolve().parents[2]
SERVER = "system:serviceaccount:kernelfleet:kernelfleet"
FAST = {"launch_timeout": 30, "delete_timeout": 4}
DRIVER = ["/usr/local/bin/bootstrap-kernel.sh"]  # the test image's kernel as the Spark driver


def shipped(variant: str) -> list[dict[str, Any]]:
    """The objects of deploy/kubernetes/rbac-<variant>.yaml, as kubectl would send them."""
    return [doc for doc in yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / f"rbac-{variant}.yaml").read_text())
            if doc]


def without(objects: list[dict[str, Any]], resource: str, verb: str) -> list[dict[str, Any]]:
    """The manifests with ``verb`` on ``resource`` taken out of the server's role (the rule goes if it empties)."""
    out = []
    for obj in objects:
        if obj["kind"] in ("Role", "ClusterRole") and obj["metadata"]["name"] == "kernelfleet-server":
            rules = []
            for rule in obj["rules"]:
                if resource in rule["resources"]:
                    assert verb in rule["verbs"], f"the shipped role has no {verb} on {resource}"
                    rule = {**rule, "verbs": [v for v in rule["verbs"] if v != verb]}
                if rule["verbs"]:
                    rules.append(rule)
            obj = {**obj, "rules": rules}
        out.append(obj)
    return out


async def apply(api: client.ApiClient, objects: list[dict[str, Any]]) -> None:
    core, rbac_api = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    for obj in objects:
        ns = obj["metadata"].get("namespace")
        kind = obj["kind"]
        if kind == "Namespace":
            await core.create_namespace(obj)
        elif kind == "ServiceAccount":
            await core.create_namespaced_service_account(ns, obj)
        elif kind == "Role":
            await rbac_api.create_namespaced_role(ns, obj)
        elif kind == "RoleBinding":
            await rbac_api.create_namespaced_role_binding(ns, obj)
        elif kind == "ClusterRole":
            await rbac_api.create_cluster_role(obj)
        else:
            assert kind == "ClusterRoleBinding", kind
            await rbac_api.create_cluster_role_binding(obj)


async def as_server(kube: KubeLite, core: client.CoreV1Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    variant: str, objects: list[dict[str, Any]]) -> None:
    """Apply ``objects`` as the cluster admin; the provisioner then runs as the server's service account."""
    await apply(core.api_client, objects)
    token = kube.service_account_token("kernelfleet", "kernelfleet")
    monkeypatch.setenv("KUBECONFIG", str(kube.write_kubeconfig(tmp_path / "server-kubeconfig", token=token)))
    if variant == rbac.SHARED:
        monkeypatch.setenv("KF_NAMESPACE", "kernels")
    else:
        monkeypatch.setenv("KF_SHARED_NAMESPACE", "false")


async def remove_everything(core: client.CoreV1Api) -> None:
    """As the admin: the manifests' namespaces and bindings, and whatever a crippled server could not delete."""
    await close_all()
    rbac_api = client.RbacAuthorizationV1Api(core.api_client)
    for name in ("kernelfleet-server", "kernel-controller"):
        for delete in (rbac_api.delete_cluster_role, rbac_api.delete_cluster_role_binding):
            try:
                await delete(name)
            except ApiException as err:
                assert err.status == 404
    doomed = [n.metadata.name for n in (await core.list_namespace()).items
              if n.metadata.name in ("kernelfleet", "kernels") or (n.metadata.labels or {}).get("kernel_id")]
    for pod in (await core.list_pod_for_all_namespaces(label_selector="kernel_id")).items:
        await core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
    for name in doomed:
        try:
            await core.delete_namespace(name)
        except ApiException as err:
            assert err.status in (404, 409)
    for name in doomed:
        await wait_namespace_gone(core, name, 60)


@pytest.mark.parametrize("variant", rbac.VARIANTS)
async def test_shipped_manifests_are_what_the_cli_prints(variant: str) -> None:
    assert (ROOT / "deploy" / "kubernetes" / f"rbac-{variant}.yaml").read_text() == rbac.render(variant)
    assert shipped(variant) == rbac.api_objects(rbac.manifests(variant))


@pytest.mark.parametrize("variant", rbac.VARIANTS)
async def test_every_lifecycle_path_runs_with_exactly_the_shipped_rbac(
        kube: KubeLite, core: client.CoreV1Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernels_dir: Path,
        k8s_spec: Callable[..., str], variant: str, caplog: pytest.LogCaptureFixture) -> None:
    await as_server(kube, core, tmp_path, monkeypatch, variant, shipped(variant))
    caplog.set_level(logging.WARNING)
    try:
        km = manager(kernels_dir, k8s_spec("rbac", **FAST))
        await km.start_kernel()
        kc = await connect(km)
        try:
            assert (await execute(kc, "x = 6 * 7; x"))["result"] == "42"
            await interrupt_busy_cell(km, kc)
            await km.restart_kernel()
            kc.stop_channels()
            kc = await connect(km)
            assert (await execute(kc, "'x' in globals()"))["result"] == "False"
        finally:
            kc.stop_channels()
        namespace = (await pods_of(core, km.kernel_id))[0].metadata.namespace
        await km.shutdown_kernel()
        assert await pods_of(core, km.kernel_id) == [] and await secrets_of(core, km.kernel_id) == []
        if variant == rbac.PER_KERNEL:
            assert namespace not in {n.metadata.name for n in (await core.list_namespace()).items}
        if variant == rbac.SHARED:  # warm pools serve shared namespaces only
            stats = await pooled_start(kernels_dir, k8s_spec)
            assert stats["claimed"] == 1 and stats["failed"] == 0, stats

        spark = manager(kernels_dir, k8s_spec("rbac-spark", provisioner="spark-operator-provisioner",
                                              driver_command=DRIVER, **FAST))
        await spark.start_kernel()
        kc = await connect(spark)
        try:
            assert (await execute(kc, "6 * 7"))["result"] == "42"
        finally:
            kc.stop_channels()
        await spark.shutdown_kernel()

        message = await failed_launch(kernels_dir, k8s_spec)
        assert "events:" in message and "Started" in message  # events and log tail were readable
        assert "could not be read" not in message
        assert not [r for r in caplog.records if "forbidden" in r.getMessage()], "a request was refused"
    finally:
        await remove_everything(core)


async def failed_launch(kernels_dir: Path, k8s_spec: Callable[..., str]) -> str:
    """A kernel whose container ends at once (busybox's default command): the launch error."""
    docker = aiodocker.Docker()
    try:
        image = await ensure_image(docker)
    finally:
        await docker.close()
    km = manager(kernels_dir, k8s_spec(f"exits-{uuid.uuid4().hex[:6]}", image_name=image, **FAST))
    with pytest.raises(LaunchError) as err:
        await km.start_kernel()
    return str(err.value)


async def pooled_start(kernels_dir: Path, k8s_spec: Callable[..., str]) -> Counter[str]:
    """A start from a full warm pool (the kernelspec's first start makes the pool), then the pool closed: its
    counts."""
    spec = k8s_spec(f"rbac-pooled-{uuid.uuid4().hex[:6]}", warm_pool_size=1, **FAST)
    warmup = manager(kernels_dir, spec)
    await warmup.start_kernel()
    await warmup.shutdown_kernel(now=True)
    (pool,) = pools()
    await asyncio.wait_for(pool.until(lambda p: len(p.idle) == 1), 120)
    km = manager(kernels_dir, spec)
    await km.start_kernel()
    await km.shutdown_kernel()
    await pool.close()
    return pool.stats


def denied(verb: str, resource: str, where: str, group: str = "", name: str = "") -> str:
    """The API server's 403 message for the server's service account."""
    qualified = f"{resource.split('/')[0]}.{group}" if group else resource.split("/")[0]
    subject = f'{qualified} "{name}"' if name else qualified
    scope = f'in the namespace "{where}"' if where else "at the cluster scope"
    return f'{subject} is forbidden: User "{SERVER}" cannot {verb} resource "{resource}" in API group "{group}" {scope}'


# (layout, resource, verb, the operation that breaks, what the user is shown)
CASES = [
    (rbac.SHARED, "namespaces", "get", "start", denied("get", "namespaces", "kernels", name="kernels")),
    (rbac.SHARED, "secrets", "create", "start", denied("create", "secrets", "kernels")),
    (rbac.SHARED, "secrets", "delete", "shutdown", "could not delete launch Secret kernels/"),
    (rbac.SHARED, "secrets", "get", "leftover-secret", "cannot get resource \"secrets\""),
    (rbac.SHARED, "pods", "create", "start", denied("create", "pods", "kernels")),
    (rbac.SHARED, "pods", "delete", "shutdown", "cannot delete resource \"pods\""),
    (rbac.SHARED, "pods", "list", "shutdown", denied("list", "pods", "kernels")),
    (rbac.SHARED, "pods", "watch", "shutdown", denied("watch", "pods", "kernels")),
    (rbac.SHARED, "pods", "get", "leftover-pod", "cannot get resource \"pods\""),
    (rbac.SHARED, "pods/log", "get", "failure", "its output could not be read: pods \""),
    (rbac.SHARED, "pods", "patch", "pooled-start", "cannot patch resource \"pods\""),
    (rbac.SHARED, "events", "list", "failure", "its events could not be read: " + denied("list", "events", "kernels")),
    (rbac.SHARED, "sparkapplications", "create", "spark-start",
     denied("create", "sparkapplications", "kernels", group="sparkoperator.k8s.io")),
    (rbac.PER_KERNEL, "namespaces", "create", "start", denied("create", "namespaces", "")),
    (rbac.PER_KERNEL, "namespaces", "get", "restart", "cannot get resource \"namespaces\""),
    (rbac.PER_KERNEL, "namespaces", "delete", "shutdown", "cannot delete resource \"namespaces\""),
    (rbac.PER_KERNEL, "namespaces", "list", "shutdown", "cannot list resource \"namespaces\" in API group \"\" at "
                                                        "the cluster scope"),
    (rbac.PER_KERNEL, "namespaces", "watch", "shutdown-slow-namespace",
     "cannot watch resource \"namespaces\" in API group \"\" at the cluster scope"),
    (rbac.PER_KERNEL, "rolebindings", "create", "start",
     "rolebindings.rbac.authorization.k8s.io is forbidden: User \"" + SERVER + "\" cannot create resource "
     "\"rolebindings\" in API group \"rbac.authorization.k8s.io\" in the namespace"),
    (rbac.PER_KERNEL, "clusterroles", "bind", "start",
     "is forbidden: user \"" + SERVER + "\" (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:kernelfleet\" "
     "\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n"
     "{APIGroups:[\"\"], Resources:[\"configmaps\"], "
     "Verbs:[\"create\" \"delete\" \"deletecollection\"]}"),
]


@pytest.mark.parametrize(("variant", "resource", "verb", "operation", "shown"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
async def test_each_verb_is_needed(
        kube: KubeLite, core: client.CoreV1Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernels_dir: Path,
        k8s_spec: Callable[..., str], caplog: pytest.LogCaptureFixture,
        variant: str, resource: str, verb: str, operation: str, shown: str) -> None:
    await as_server(kube, core, tmp_path, monkeypatch, variant, without(shipped(variant), resource, verb))
    caplog.set_level(logging.WARNING)
    try:
        seen = await run(operation, core, kernels_dir, k8s_spec)
        logged = "\n".join(r.getMessage() for r in caplog.records)
        # a broken watch logs the Status body it got, the message JSON-escaped in it
        logged += "\n" + logged.replace('\\"', '"')
        assert shown in seen + "\n" + logged, f"{operation} without {verb} {resource}:\n{seen}\nlog:\n{logged}"
        print(f"{variant}: without {verb} on {resource}, {operation} shows:\n{seen or logged}")
    finally:
        await remove_everything(core)


async def linger_in(core: client.CoreV1Api, namespace: str) -> None:
    """A running pod that ignores SIGTERM for its 3 s grace period: the namespace's deletion then takes that long,
    as on a real cluster, so whoever waits for it must watch."""
    docker = aiodocker.Docker()
    try:
        image = await ensure_image(docker)
    finally:
        await docker.close()
    await core.create_namespaced_pod(namespace, {"metadata": {"name": "lingering"}, "spec": {
        "terminationGracePeriodSeconds": 3, "restartPolicy": "Never",
        "containers": [{"name": "c", "image": image, "command": ["sh", "-c", "trap '' TERM; echo up; sleep 3600"]}]}})
    response = await core.list_namespaced_pod(namespace, field_selector="metadata.name=lingering", watch=True,
                                              timeout_seconds=30, _preload_content=False)
    try:
        while line := await response.content.readline():
            if yaml.safe_load(line)["object"].get("status", {}).get("phase") == "Running":
                return
    finally:
        response.release()
    raise AssertionError("the lingering pod never ran")


async def run(operation: str, core: client.CoreV1Api, kernels_dir: Path, k8s_spec: Callable[..., str]) -> str:
    """Drive ``operation``; returns the launch error it raised ("" when the failure only reached the log)."""
    if operation == "failure":
        return await failed_launch(kernels_dir, k8s_spec)
    if operation == "pooled-start":
        stats = await pooled_start(kernels_dir, k8s_spec)
        assert stats["failed"] == 1 and stats["claimed"] == 1, stats  # the claim failed: the launch went cold
        return ""
    spec = (k8s_spec("rbac-spark", provisioner="spark-operator-provisioner", driver_command=DRIVER, **FAST)
            if operation == "spark-start" else k8s_spec("rbac", **FAST))
    km = manager(kernels_dir, spec)
    env: dict[str, str] = {}
    if operation.startswith("leftover"):
        name = f"leftover-{uuid.uuid4().hex[:6]}"
        env["KERNEL_POD_NAME"] = name
        labels = {"kernel_id": km.kernel_id, "app": "kernelfleet"}
        if operation == "leftover-secret":
            await core.create_namespaced_secret("kernels", {"metadata": {"name": f"{name}-launch", "labels": labels}})
        else:
            await core.create_namespaced_pod("kernels", {"metadata": {"name": name, "labels": labels}, "spec": {
                "containers": [{"name": "c", "image": "kernelfleet/not-there:404"}]}})
    try:
        await km.start_kernel(env=env)
    except LaunchError as err:
        assert km.kernel_id in str(err)
        assert operation in ("start", "spark-start", "leftover-secret", "leftover-pod"), \
            f"{operation}: the launch failed: {err}"
        return str(err)
    assert operation.startswith(("shutdown", "restart")), f"{operation}: the launch succeeded"
    if operation == "shutdown-slow-namespace":
        await linger_in(core, (await pods_of(core, km.kernel_id))[0].metadata.namespace)
    if operation == "restart":
        with pytest.raises(LaunchError) as err:
            await km.restart_kernel()
        await km.shutdown_kernel(now=True)
        return str(err.value)
    await km.shutdown_kernel()
    return ""



@pytest.mark.parametrize("missing", [None, ("configmaps", "create"), ("services", "get")])
async def test_template_objects_need_exactly_the_rules_of_their_kinds(
        kube: KubeLite, core: client.CoreV1Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernels_dir: Path,
        k8s_spec: Callable[..., str], caplog: pytest.LogCaptureFixture, missing: tuple[str, str] | None) -> None:
    """``jupyter k8s-spec rbac --template-kind ConfigMap --template-kind Secret ...``: a kernel whose template makes a
    ConfigMap, a Secret, a claim and a Service runs its whole life with exactly that; without a verb, the launch
    error names it."""
    objects = rbac.api_objects(rbac.manifests(rbac.SHARED, rbac.RbacSettings(template_kinds=tuple(TEMPLATE_KINDS))))
    if missing is not None:
        objects = without(objects, *missing)
    await as_server(kube, core, tmp_path, monkeypatch, rbac.SHARED, objects)
    caplog.set_level(logging.WARNING)
    template = tmp_path / "kernel-pod.yaml.j2"
    template.write_text(TEMPLATE_WITH_OBJECTS)
    try:
        km = manager(kernels_dir, k8s_spec("templated", pod_template=str(template),
                                           template_object_kinds=TEMPLATE_KINDS, **FAST))
        if missing == ("configmaps", "create"):
            with pytest.raises(LaunchError) as err:
                await km.start_kernel()
            assert denied("create", "configmaps", "kernels") in str(err.value)
            assert "jupyter k8s-spec rbac --template-kind ConfigMap" in str(err.value)
            return
        if missing == ("services", "get"):  # a leftover of this kernel's cannot be read, so it is not replaced
            name = f"leftover-{uuid.uuid4().hex[:6]}"
            labels = {"kernel_id": km.kernel_id, "app": "kernelfleet"}
            await core.create_namespaced_service("kernels", {"metadata": {"name": name, "labels": labels},
                                                             "spec": {"ports": [{"port": 80}]}})
            with pytest.raises(LaunchError) as err:
                await km.start_kernel(env={"KERNEL_POD_NAME": name})
            assert 'cannot get resource "services"' in "\n".join(r.getMessage() for r in caplog.records)
            assert f"Kubernetes refused the pod template's Service kernels/{name}" in str(err.value)
            return
        await km.start_kernel()
        kc = await connect(km)
        try:
            assert (await execute(kc, "6 * 7"))["result"] == "42"
        finally:
            kc.stop_channels()
        await km.restart_kernel()
        await km.shutdown_kernel()
        selector = f"kernel_id={km.kernel_id}"
        assert (await core.list_namespaced_config_map("kernels", label_selector=selector)).items == []
        assert (await core.list_namespaced_service("kernels", label_selector=selector)).items == []
        assert not [r for r in caplog.records if "forbidden" in r.getMessage()], "a request was refused"
    finally:
        await remove_everything(core)
