"""The pure parts: names, the pod builder, the template renderer and the policy checks, without a cluster.
Every manifest built here is validated against the official Kubernetes schema (kubernetes-validate)."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest

from kernelfleet.provisioners.k8s.names import K8sNameError, check_dns_subdomain, dns_label
from kernelfleet.provisioners.k8s.pod import (
    PodPolicy,
    PodSettings,
    PodSpecError,
    Resources,
    SecretKeyRef,
    apply_restricted,
    build_pod,
    check_pod,
    check_volume,
    merge_env,
    parse_quantity,
)
from kernelfleet.provisioners.k8s.secret import build_launch_secret, check_token_absent, launch_token_ref
from kernelfleet.provisioners.k8s.template import render_pod_template

K8S_VERSION = "1.33"
KID = "3f1c-kernel"


def validate(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def settings(**changes: object) -> PodSettings:
    base = dict(name="alice-3f1c", namespace="default", kernel_id=KID, image="kernelfleet/kernel-py:dev",
                env={"KERNEL_ID": KID, "KERNEL_LANGUAGE": "python"}, uid=1000, gid=100)
    base.update(changes)
    return PodSettings(**base)  # type: ignore[arg-type]


def policy(**changes: object) -> PodPolicy:
    base = dict(name="alice-3f1c", namespace="default", kernel_id=KID)
    base.update(changes)
    return PodPolicy(**base)  # type: ignore[arg-type]


def test_minimal_pod_is_valid() -> None:
    pod = build_pod(settings())
    validate(pod)
    assert check_pod(pod, policy()) is pod
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["securityContext"] == {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100,
                                              "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["spec"]["containers"][0]["securityContext"] == {"allowPrivilegeEscalation": False,
                                                               "capabilities": {"drop": ["ALL"]}}
    assert pod["metadata"]["labels"] == {"kernel_id": KID, "app": "kernelfleet", "component": "kernel"}


def test_restricted_opt_out() -> None:
    pod = build_pod(settings(restricted=False))
    validate(pod)
    assert pod["spec"]["securityContext"] == {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100}
    assert pod["spec"]["containers"][0]["securityContext"] == {"allowPrivilegeEscalation": False}


def test_restricted_fills_only_what_a_template_leaves_unset() -> None:
    spec = {"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "k.json"}},
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "kernel", "securityContext": {"allowPrivilegeEscalation": True,
                                                                   "capabilities": {"drop": ["NET_RAW"]}}}]}
    apply_restricted(spec)
    assert spec["securityContext"] == {"seccompProfile": {"type": "Localhost", "localhostProfile": "k.json"},
                                       "runAsNonRoot": True}
    assert spec["containers"][0]["securityContext"] == {"allowPrivilegeEscalation": True,
                                                        "capabilities": {"drop": ["NET_RAW", "ALL"]}}
    assert spec["initContainers"][0]["securityContext"] == {"allowPrivilegeEscalation": False,
                                                            "capabilities": {"drop": ["ALL"]}}


def test_full_pod_is_valid() -> None:
    pod = build_pod(settings(
        service_account="kernels", working_dir="/home/jovyan/work", host_network=True,
        resources=Resources({"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "1"}, {"cpu": "2", "memory": "2Gi"}),
        labels={"team": "data"}, annotations={"note": "x"}, node_selector={"disktype": "ssd"},
        tolerations=({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},),
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
        image_pull_secrets=("regcred",), image_pull_policy="IfNotPresent",
        volumes=({"name": "data", "persistentVolumeClaim": {"claimName": "data"}},),
        volume_mounts=({"name": "data", "mountPath": "/data", "readOnly": True},),
    ))
    validate(pod)
    check_pod(pod, policy(host_network=True))
    container = pod["spec"]["containers"][0]
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["hostNetwork"] is True and pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


@pytest.mark.parametrize("text", ["alice", "Alice.Smith@example.com", "x" * 200, "---", "ÄÖÜ-user", "a" * 63])
def test_dns_labels(text: str) -> None:
    label = dns_label(text)
    assert len(label) <= 63
    validate({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": label}})
    assert dns_label(text) == label  # deterministic: a restart finds the same pod and namespace


def test_truncated_labels_stay_distinct() -> None:
    a, b = dns_label("u" * 70 + "-one"), dns_label("u" * 70 + "-two")
    assert a != b and len(a) == len(b) == 63


@pytest.mark.parametrize("value", ['default"\n  hostPID: true', "default\nhostPID: true", "Default", "a b", "-x",
                                   "x" * 254, "a..b", "{{ x }}", "a/b"])
def test_bad_service_account_names(value: str) -> None:
    with pytest.raises(K8sNameError, match="not a valid Kubernetes name"):
        check_dns_subdomain(KID, "KERNEL_SERVICE_ACCOUNT_NAME", value)


@pytest.mark.parametrize("value", ["1\n  hostPID: true", '1"', "-1", "+1", "1e3", "0x10", "1 Gi", "", "1Gi\n", "NaN",
                                   "1,5", "{1}", True])
def test_bad_quantities(value: object) -> None:
    with pytest.raises(PodSpecError, match="not a resource quantity"):
        parse_quantity(KID, "KERNEL_MEMORY", value)


@pytest.mark.parametrize("value", ["1", "0.5", "500m", "4Gi", "1.5G", ".5", 2])
def test_good_quantities(value: object) -> None:
    assert parse_quantity(KID, "KERNEL_CPUS", value) == str(value)


def test_host_path_needs_the_operators_consent() -> None:
    volume = {"name": "root", "hostPath": {"path": "/"}}
    with pytest.raises(PodSpecError, match="hostPath"):
        check_volume(KID, volume, allow_host_path=False)
    assert check_volume(KID, volume, allow_host_path=True) == volume


@pytest.mark.parametrize(("change", "error"), [
    (lambda p: p["spec"].update(hostPID=True), "hostPID"),
    (lambda p: p["spec"].update(hostIPC=True), "hostIPC"),
    (lambda p: p["spec"].update(hostNetwork=True), "host network"),
    (lambda p: p["spec"]["securityContext"].update(runAsUser=0), "prohibited"),
    (lambda p: p["spec"]["securityContext"].update(runAsUser="0"), "numeric"),
    (lambda p: p["spec"]["containers"][0].update(securityContext={"runAsUser": 0}), "prohibited"),
    (lambda p: p["spec"]["containers"][0].update(securityContext={"privileged": True}), "privileged"),
    (lambda p: p["spec"].update(volumes=[{"name": "r", "hostPath": {"path": "/"}}]), "hostPath"),
    (lambda p: p["metadata"].update(name="someone-else"), "must be"),
    (lambda p: p["metadata"].update(namespace="kube-system"), "must be"),
    (lambda p: p.update(kind="Secret"), "one v1 Pod"),
])
def test_policy_refuses(change, error: str) -> None:  # type: ignore[no-untyped-def]
    pod = build_pod(settings())
    change(pod)
    with pytest.raises(PodSpecError, match=error):
        check_pod(pod, policy())


GP_TEMPLATE = """\
apiVersion: v1
kind: Pod
metadata:
  name: "{{ kernel_pod_name }}"
  namespace: "{{ kernel_namespace }}"
  labels:
    kernel_id: "{{ kernel_id }}"
    app: gateway-provisioners
    component: kernel
spec:
  restartPolicy: Never
  serviceAccountName: "{{ kernel_service_account_name }}"
  securityContext:
    runAsUser: {{ kernel_uid | int }}
    runAsGroup: {{ kernel_gid | int }}
  containers:
  - image: "{{ kernel_image }}"
    name: "{{ kernel_pod_name }}"
    env:
{% if kernel_cpus is defined %}
    resources:
      requests:
        cpu: "{{ kernel_cpus }}"
{% endif %}
    labelsfromclient: "{{ kernel_extra }}"
"""


def render(tmp_path: Path, values: dict) -> dict:
    path = tmp_path / "kernel-pod.yaml.j2"
    path.write_text(GP_TEMPLATE)
    base = {"kernel_pod_name": "alice-3f1c", "kernel_namespace": "default", "kernel_id": KID,
            "kernel_service_account_name": "default", "kernel_uid": 1000, "kernel_gid": 100,
            "kernel_image": "kernelfleet/kernel-py:dev", "kernel_extra": "x"}
    return render_pod_template(KID, path, {**base, **values})


def test_gp_template_renders(tmp_path: Path) -> None:
    pod = render(tmp_path, {"kernel_cpus": "500m"})
    assert pod["spec"]["serviceAccountName"] == "default"
    assert pod["spec"]["securityContext"] == {"runAsUser": 1000, "runAsGroup": 100}
    assert pod["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "500m"}}
    assert pod["spec"]["containers"][0]["env"] is None


@pytest.mark.parametrize("payload", [
    '"default\\"\n  hostPID: true\n  hostNetwork: true #"',
    'default"\n  hostPID: true\n  hostNetwork: true #',
    "default'\n  hostPID: true #",
    "x\n    securityContext: {privileged: true}",
    "}}{{ 7*7 }}",
    "{% raw %}",
])
def test_no_value_changes_the_template_structure(tmp_path: Path, payload: str) -> None:
    """Even a value no validation would let through stays one string in the field it was put in."""
    pod = render(tmp_path, {"kernel_service_account_name": payload, "kernel_extra": payload})
    assert pod["spec"]["serviceAccountName"] == payload
    assert pod["spec"]["containers"][0]["labelsfromclient"] == payload
    assert set(pod["spec"]) == {"restartPolicy", "serviceAccountName", "securityContext", "containers"}


def test_template_must_be_one_pod(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml.j2"
    path.write_text("kind: Pod\n---\nkind: Secret\n")
    with pytest.raises(PodSpecError, match="exactly one Pod"):
        render_pod_template(KID, path, {})
    path.write_text("kind: Pod\nname: {{ undefined_thing }}\n")
    with pytest.raises(PodSpecError, match="undefined"):
        render_pod_template(KID, path, {})


TOKEN = "s3cr3t-launch-token_value"
REF = SecretKeyRef("alice-3f1c-launch", "launch-token")


def test_launch_token_goes_by_secret_reference() -> None:
    pod = build_pod(settings(secret_env={"LAUNCH_TOKEN": REF}))
    validate(pod)
    check_pod(pod, policy(secret_env={"LAUNCH_TOKEN": REF}))
    env = pod["spec"]["containers"][0]["env"]
    assert env[:2] == [{"name": "KERNEL_ID", "value": KID}, {"name": "KERNEL_LANGUAGE", "value": "python"}]
    assert env[2] == {"name": "LAUNCH_TOKEN",
                      "valueFrom": {"secretKeyRef": {"name": "alice-3f1c-launch", "key": "launch-token"}}}
    check_token_absent(KID, pod, TOKEN)


def test_launch_secret_manifest_is_valid() -> None:
    assert launch_token_ref(KID, "alice-3f1c") == SecretKeyRef("alice-3f1c-launch", "launch-token")
    ref = launch_token_ref(KID, "u" * 63)  # the longest pod name: the Secret's name is cut like a pod name
    assert len(ref.name) == 63 and ref.name != launch_token_ref(KID, "u" * 62).name
    secret = build_launch_secret(ref, "default", KID, TOKEN, {"team": "data"})
    validate(secret)
    assert secret["type"] == "Opaque" and secret["immutable"] is True
    assert secret["metadata"]["labels"] == {"team": "data", "kernel_id": KID, "app": "kernelfleet",
                                            "component": "kernel"}
    assert set(secret["data"]) == {"launch-token"} and TOKEN not in str(secret)  # base64, as the API stores it


@pytest.mark.parametrize("entry", [
    {"name": "LAUNCH_TOKEN", "value": TOKEN},
    {"name": "LAUNCH_TOKEN", "valueFrom": {"secretKeyRef": {"name": "someone-elses", "key": "launch-token"}}},
    {"name": "LAUNCH_TOKEN", "value": "", "valueFrom": {"secretKeyRef": {"name": REF.name, "key": REF.key}}},
])
@pytest.mark.parametrize("kind", ["containers", "initContainers"])
def test_policy_refuses_a_launch_token_that_is_not_the_reference(entry: dict, kind: str) -> None:
    pod = build_pod(settings(secret_env={"LAUNCH_TOKEN": REF}))
    if kind == "containers":
        pod["spec"]["containers"][0]["env"][-1] = entry
    else:
        pod["spec"]["initContainers"] = [{"name": "init", "image": "busybox", "env": [entry]}]
    with pytest.raises(PodSpecError, match="LAUNCH_TOKEN may only be the reference"):
        check_pod(pod, policy(secret_env={"LAUNCH_TOKEN": REF}))


def test_template_env_gets_the_reference_instead_of_its_literal() -> None:
    container = {"name": "k", "image": "i", "env": [{"name": "LAUNCH_TOKEN", "value": "from-the-template"},
                                                     {"name": "EXTRA", "value": "kept"}]}
    merge_env(container, {"KERNEL_ID": KID}, {"LAUNCH_TOKEN": REF})
    assert container["env"] == [{"name": "EXTRA", "value": "kept"}, {"name": "KERNEL_ID", "value": KID},
                                REF.env_entry("LAUNCH_TOKEN")]


def test_a_manifest_carrying_the_token_is_refused() -> None:
    pod = build_pod(settings(annotations={"leak": TOKEN}))
    with pytest.raises(PodSpecError, match="contains the launch token"):
        check_token_absent(KID, pod, TOKEN)
