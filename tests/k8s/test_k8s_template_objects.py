"""Multi-document pod templates (GP's kernel-pod.yaml with a PVC, Secret, ConfigMap, Service next to the Pod), on
kubelite: the kinds the kernelspec's ``template_object_kinds`` allows are created before the pod, in the kernel's
namespace, labelled as the kernel's objects; the kernel reads the ConfigMap and the Secret it was given; a restart
makes them afresh and a shutdown deletes them; a launch that fails part-way deletes what it had made and leaves
someone else's object alone; the orphan sweep finds and removes them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from k8s_helpers import TEMPLATE_KINDS as KINDS
from k8s_helpers import TEMPLATE_WITH_OBJECTS as TEMPLATE
from k8s_helpers import pods_of, secrets_of
from kf_testing import connect, execute, manager
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.kubelite import KubeLite
from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.k8s.pod import PodSpecError
from kernelfleet.provisioners.server_identity import LABEL_SERVER
from kernelfleet.provisioners.sweep import kubernetes_objects
from kernelfleet.provisioners.sweep.model import Outcome

pytestmark = pytest.mark.timeout(180)
LISTERS = {
    "ConfigMap": "list_config_map_for_all_namespaces",
    "Secret": "list_secret_for_all_namespaces",
    "PersistentVolumeClaim": "list_persistent_volume_claim_for_all_namespaces",
    "Service": "list_service_for_all_namespaces",
}


async def kernel_objects(core: client.CoreV1Api, kernel_id: str) -> dict[str, dict[str, str]]:
    """The kernel's labelled objects of the template kinds: kind -> {namespace/name: uid}."""
    found: dict[str, dict[str, str]] = {}
    for kind, lister in LISTERS.items():
        items = (await getattr(core, lister)(label_selector=f"kernel_id={kernel_id}")).items
        if items:
            found[kind] = {f"{o.metadata.namespace}/{o.metadata.name}": o.metadata.uid for o in items}
    return found


@pytest.fixture
def template_spec(k8s_spec: Callable[..., str], tmp_path: Path) -> Callable[..., str]:
    template = tmp_path / "kernel-pod.yaml.j2"
    template.write_text(TEMPLATE)

    def make(name: str, **config: object) -> str:
        return k8s_spec(name, pod_template=str(template), **config)

    return make


async def test_template_objects_live_and_die_with_the_kernel(kube: KubeLite, core: client.CoreV1Api,
                                                             kernels_dir: Path,
                                                             template_spec: Callable[..., str]) -> None:
    km = manager(kernels_dir, template_spec("templated", template_object_kinds=KINDS))
    await km.start_kernel(env={"KERNEL_USERNAME": "bob"})
    try:
        pod = f"bob-{km.kernel_id}"
        made = await kernel_objects(core, km.kernel_id)
        assert {kind: sorted(names) for kind, names in made.items()} == {
            "ConfigMap": [f"default/{pod}-conf"], "Secret": [f"default/{pod}-db"],  # the launch Secret is gone
            "PersistentVolumeClaim": [f"default/{pod}-data"], "Service": [f"default/{pod}"]}
        (kernel_pod,) = await pods_of(core, km.kernel_id)
        assert kernel_pod.spec.restart_policy == "Never"  # the template leaves it unset: a kernel is not restarted
        service = await core.read_namespaced_service(pod, "default")
        assert service.metadata.labels[LABEL_SERVER] == km.provisioner.server_id
        assert service.metadata.labels["kernel_id"] == km.kernel_id
        kc = await connect(km)
        try:
            reply = await execute(kc, "import os; open('/etc/kernel-conf/greeting').read(), os.environ['DB_PASSWORD']")
            assert reply["result"] == repr((f"hello {km.kernel_id}", "not-a-real-password")), reply
        finally:
            kc.stop_channels()

        await km.restart_kernel()
        again = await kernel_objects(core, km.kernel_id)
        assert {k: set(v) for k, v in again.items()} == {k: set(v) for k, v in made.items()}
        assert all(set(again[k].values()).isdisjoint(made[k].values()) for k in made), "made afresh"
        info = await km.provisioner.get_provisioner_info()
        assert sorted(key for key in info["owned"] if key.startswith("object:")) == sorted(
            [f"object:ConfigMap/{pod}-conf", f"object:Secret/{pod}-db", f"object:PersistentVolumeClaim/{pod}-data",
             f"object:Service/{pod}"])
    finally:
        await km.shutdown_kernel()
    assert await kernel_objects(core, km.kernel_id) == {}
    assert await pods_of(core, km.kernel_id) == []


async def test_a_launch_that_fails_part_way_removes_what_it_made(kube: KubeLite, core: client.CoreV1Api,
                                                                 kernels_dir: Path,
                                                                 template_spec: Callable[..., str]) -> None:
    # Kinds the kernelspec does not allow: refused before anything is created.
    km = manager(kernels_dir, template_spec("templated-closed"))
    with pytest.raises(PodSpecError, match=f"Kernel {km.kernel_id}: document 0 .ConfigMap .* is not created: this "
                                           "kernelspec's template_object_kinds allows no other kind"):
        await km.start_kernel()
    assert await kernel_objects(core, km.kernel_id) == {} and await pods_of(core, km.kernel_id) == []

    # The second document's name is taken by someone else's Secret: the launch fails with the API server's 409,
    # the ConfigMap it had made is deleted, the other Secret is left as it was.
    name = f"taken-{uuid.uuid4().hex[:6]}"
    await core.create_namespaced_secret("default", {"metadata": {"name": f"{name}-db"},
                                                    "stringData": {"password": "someone else's"}})
    try:
        km = manager(kernels_dir, template_spec("templated-taken", template_object_kinds=KINDS))
        with pytest.raises(LaunchError) as err:
            await km.start_kernel(env={"KERNEL_POD_NAME": name})
        message = str(err.value)
        assert message.startswith(f"Kernel {km.kernel_id}: Kubernetes refused the pod template's Secret "
                                  f"default/{name}-db: "), message
        assert "already exists" in message and "KERNEL_POD_NAME" in message, message
        assert await kernel_objects(core, km.kernel_id) == {}
        assert await pods_of(core, km.kernel_id) == [] and await secrets_of(core, km.kernel_id) == []
        kept = await core.read_namespaced_secret(f"{name}-db", "default")
        assert kept.metadata.labels is None and kept.data
    finally:
        await core.delete_namespaced_secret(f"{name}-db", "default")


async def test_the_sweep_removes_template_objects_a_crashed_server_left(kube: KubeLite,
                                                                        core: client.CoreV1Api) -> None:
    """What a server killed after creating a kernel's template objects leaves: found by its server label, removed
    by uid; an object Spark made for a driver pod (an owner reference) is the garbage collector's."""
    server, kernel_id = f"sweep-{uuid.uuid4().hex[:8]}", f"k-{uuid.uuid4().hex[:8]}"
    labels = {"kernel_id": kernel_id, LABEL_SERVER: server, "app": "kernelfleet"}
    meta = {"name": "left", "labels": labels}
    await core.create_namespaced_config_map("default", {"metadata": meta, "data": {"a": "b"}})
    await core.create_namespaced_service("default", {"metadata": meta, "spec": {"clusterIP": "None", "ports": [
        {"port": 80}]}})
    await core.create_namespaced_persistent_volume_claim("default", {"metadata": meta, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    owned = {"name": "owned", "labels": labels, "ownerReferences": [
        {"apiVersion": "v1", "kind": "Pod", "name": "driver", "uid": str(uuid.uuid4())}]}
    await core.create_namespaced_config_map("default", {"metadata": owned, "data": {}})
    try:
        orphans = await kubernetes_objects.find(server)
        assert sorted((o.kind, o.name) for o in orphans) == [
            ("configmap", "default/left"), ("persistentvolumeclaim", "default/left"), ("service", "default/left")]
        removals = await kubernetes_objects.remove(orphans)
        assert [r.outcome for r in removals] == [Outcome.REMOVED] * 3, removals
        assert set(await kernel_objects(core, kernel_id)) <= {"ConfigMap"}  # at most the owned one
    finally:
        try:
            await core.delete_namespaced_config_map("owned", "default")
        except ApiException as err:
            assert err.status == 404  # the garbage collector took it (its owner does not exist)
