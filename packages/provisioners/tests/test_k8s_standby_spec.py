"""A warm pool's standby pod as data (``k8s.standby_spec``), without a cluster: built like a cold kernel's pod but
labelled as a standby, its token only by reference; the shape that decides whether a launch fits a standby; the
claim's patch."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate

from kernelfleet.protocol.contract import LAUNCH_TOKEN, PORT_RANGE
from kernelfleet.provisioners.k8s.settings import (
    ContainerChoice,
    KubernetesSettings,
    kernel_pod_manifest,
    settle_pod_launch,
)
from kernelfleet.provisioners.k8s.standby_spec import StandbyPod, claim_patch, pod_shape, relabelled, standby_pod
from kernelfleet.provisioners.labels import LABEL_KERNEL_ID
from kernelfleet.provisioners.pool.spec import LABEL_POOL, LABEL_STANDBY
from kernelfleet.provisioners.server_identity import LABEL_SERVER

SERVER, POOL, STANDBY = "host-1a2b3c4d", "k8s_python-0123456789ab", "standby-00112233445566778899"
KID = "5d2c6f0e-1111-4222-8333-944455556666"
TOKEN, KERNEL_TOKEN = "registration-token-value", "kernel-token-value"
IMAGE = "kernelfleet/kernel-py:dev"


def standby(settings: KubernetesSettings | None = None) -> StandbyPod:
    container = ContainerChoice(image=IMAGE, uid=1000, gid=100, working_dir=None,
                                env={"KERNEL_ID": STANDBY, LAUNCH_TOKEN: TOKEN, PORT_RANGE: "0..0"})
    return standby_pod(settings or KubernetesSettings(labels={"team": "a"}), SERVER, POOL, STANDBY, container, "jovyan")


def kernel_manifest(settings: KubernetesSettings | None = None, **request: str) -> tuple[dict[str, Any], set[str]]:
    """A cold kernel's pod for the same kernelspec, and its environment's names."""
    container = ContainerChoice(image=IMAGE, uid=1000, gid=100, working_dir="/home/jovyan/work",
                                env={"KERNEL_ID": KID, LAUNCH_TOKEN: KERNEL_TOKEN, PORT_RANGE: "9000..9999",
                                     "KERNEL_TEAM": "blue"})
    launch = settle_pod_launch(settings or KubernetesSettings(labels={"team": "a"}), KID, SERVER,
                               {"KERNEL_USERNAME": "alice", **request}, container)
    return kernel_pod_manifest(launch), set(launch.env)


def test_a_standby_pod_is_a_valid_pod_labelled_as_a_standby_with_its_token_by_reference() -> None:
    pod = standby()
    labels = pod.manifest["metadata"]["labels"]
    assert pod.name == "kf-standby-00112233445566778899" and pod.manifest["metadata"]["name"] == pod.name
    assert LABEL_KERNEL_ID not in labels
    assert labels[LABEL_SERVER] == SERVER and labels[LABEL_POOL] == POOL and labels[LABEL_STANDBY] == STANDBY
    assert labels["component"] == "standby" and labels["app"] == "kernelfleet" and labels["team"] == "a"
    assert TOKEN not in json.dumps(pod.manifest)
    (ref,) = [e for e in pod.manifest["spec"]["containers"][0]["env"] if e["name"] == LAUNCH_TOKEN]
    assert ref["valueFrom"]["secretKeyRef"]["name"] == pod.secret["metadata"]["name"] == f"{pod.name}-launch"
    assert LABEL_KERNEL_ID not in pod.secret["metadata"]["labels"]
    assert pod.secret["metadata"]["labels"][LABEL_STANDBY] == STANDBY
    kubernetes_validate.validate(pod.manifest, "1.30", strict=True)


def test_a_launch_fits_a_standby_unless_its_pod_differs_in_what_a_claim_cannot_change() -> None:
    pod = standby()
    manifest, names = kernel_manifest()
    names |= set(pod.env)
    assert pod_shape(manifest, names) == pod_shape(pod.manifest, names)  # names, labels, env, working dir differ
    cpus, cpu_names = kernel_manifest(KERNEL_CPUS="100m")
    assert pod_shape(cpus, cpu_names | set(pod.env)) != pod_shape(pod.manifest, cpu_names | set(pod.env))
    account = KubernetesSettings(labels={"team": "a"}, service_account_name="other")
    other, other_names = kernel_manifest(account)
    assert pod_shape(other, other_names | set(pod.env)) != pod_shape(pod.manifest, other_names | set(pod.env))


def test_the_claim_relabels_only_that_very_pod() -> None:
    manifest, _ = kernel_manifest()
    labels = manifest["metadata"]["labels"]
    ops = claim_patch("uid-1", labels)
    assert ops[0] == {"op": "test", "path": "/metadata/uid", "value": "uid-1"}
    assert {"op": "add", "path": "/metadata/labels/kernelfleet.io~1server", "value": SERVER} in ops
    assert {"op": "add", "path": f"/metadata/labels/{LABEL_KERNEL_ID}", "value": KID} in ops
    assert relabelled({"metadata": {"labels": {LABEL_KERNEL_ID: "x", "a": "b"}}}, {"c": "d"}) == {
        "metadata": {"labels": {"a": "b", "c": "d"}}}
