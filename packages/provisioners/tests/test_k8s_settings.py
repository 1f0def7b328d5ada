"""A Kubernetes launch decided and built as data (``k8s.settings``, ``k8s.spark_application``), without a cluster
and without a provisioner: the kernelspec's settings and a request in, a frozen ``PodLaunch`` and manifests out."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import kubernetes_validate
import pytest

from kernelfleet.protocol.contract import LAUNCH_TOKEN, PORT_RANGE
from kernelfleet.provisioners.k8s.pod import PodSpecError
from kernelfleet.provisioners.k8s.settings import (
    ContainerChoice,
    KubernetesSettings,
    PodLaunch,
    kernel_manifests,
    kernel_pod_manifest,
    settle_pod_launch,
    template_values,
)
from kernelfleet.provisioners.k8s.spark_application import (
    SparkApplicationSettings,
    application_state,
    build_spark_application,
    driver_pod_name,
)
from kernelfleet.provisioners.k8s.template import enforce_operator_fields
from kernelfleet.provisioners.labels import LABEL_KERNEL_ID
from kernelfleet.provisioners.server_identity import LABEL_SERVER
from kernelfleet.provisioners.spec_values import K8sNameError

KID = "3f1c-kernel"
SERVER = "host-1a2b3c4d"
TOKEN = "s3cret-token-value"
CONTAINER = ContainerChoice(image="kernelfleet/kernel-py:dev", uid=1000, gid=100, working_dir=None,
                            env={"KERNEL_ID": KID, LAUNCH_TOKEN: TOKEN, PORT_RANGE: "0..0"})


def settle(settings: KubernetesSettings | None = None, **request: str) -> PodLaunch:
    return settle_pod_launch(settings or KubernetesSettings(), KID, SERVER, {"KERNEL_USERNAME": "alice", **request},
                             CONTAINER)


def test_the_launch_is_a_frozen_value() -> None:
    launch = settle()
    assert (launch.pod_name, launch.namespace, launch.created_namespace) == (f"alice-{KID}", "default", False)
    assert launch.service_account == "default" and launch.requested_pod_name is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        launch.pod_name = "other"  # type: ignore[misc]
    assert launch == settle(), "the same settings and request make the same launch"


def test_the_kernel_env_names_its_pod_and_the_token_stays_out_of_the_pod() -> None:
    launch = settle(KERNEL_POD_NAME="My Pod")
    assert launch.pod_name == "my-pod" and launch.requested_pod_name == "My Pod"
    assert launch.env["KERNEL_POD_NAME"] == "my-pod" and launch.env["KERNEL_NAMESPACE"] == "default"
    assert launch.env[LAUNCH_TOKEN] == TOKEN and LAUNCH_TOKEN not in launch.pod.env
    assert launch.secret["metadata"]["name"] == launch.token_ref.name
    assert launch.secret["metadata"]["labels"][LABEL_SERVER] == SERVER
    manifest = kernel_pod_manifest(launch)
    kubernetes_validate.validate(manifest, "1.33", strict=True)
    assert TOKEN not in json.dumps(manifest)
    assert manifest["metadata"]["labels"][LABEL_KERNEL_ID] == KID


def test_a_per_kernel_namespace_is_named_after_the_pod() -> None:
    launch = settle(KubernetesSettings(shared_namespace=False))
    assert (launch.namespace, launch.created_namespace) == (launch.pod_name, True)


@pytest.mark.parametrize(("request_env", "setting"), [
    ({"KERNEL_NAMESPACE": "team-a"}, "allow_client_namespace"),
    ({"KERNEL_SERVICE_ACCOUNT_NAME": "admin"}, "allow_client_service_account"),
    ({"KERNEL_CPUS": "4"}, "allow_client_resources"),
])
def test_what_the_operator_closed_is_refused_naming_the_setting(request_env: dict[str, str], setting: str) -> None:
    closed = KubernetesSettings(allow_client_resources=False)
    with pytest.raises(PermissionError, match=f"Kernel {KID}: .*{setting} is off"):
        settle(closed, **request_env)
    opened = dataclasses.replace(closed, **{setting: True})
    launch = settle(opened, **request_env)
    if "KERNEL_CPUS" in request_env:
        assert launch.pod.resources.requests == {"cpu": "4"}
    else:
        assert request_env.popitem()[1] in (launch.namespace, launch.service_account)


def test_volumes_of_the_request_are_checked_and_named() -> None:
    settings = KubernetesSettings(allow_client_volumes=True)
    assert KubernetesSettings().closed_request_names() == {"KERNEL_VOLUMES": "allow_client_volumes",
                                                           "KERNEL_VOLUME_MOUNTS": "allow_client_volumes"}
    assert settings.closed_request_names() == {}
    launch = settle(settings, KERNEL_VOLUMES='[{"name": "data", "emptyDir": {}}]',
                    KERNEL_VOLUME_MOUNTS='[{"name": "data", "mountPath": "/data"}]')
    assert [v["name"] for v in launch.pod.volumes] == ["data"]
    with pytest.raises(PodSpecError, match=r"hostPath.*\(in KERNEL_VOLUMES\)"):
        settle(settings, KERNEL_VOLUMES='[{"name": "h", "hostPath": {"path": "/"}}]')


def test_bad_names_in_the_kernelspec_fail_before_anything_is_built() -> None:
    with pytest.raises(K8sNameError, match="Kernel 3f1c-kernel: 'bad key!'"):
        settle(KubernetesSettings(labels={"bad key!": "x"}))
    with pytest.raises(K8sNameError, match="image_pull_secrets"):
        settle(KubernetesSettings(image_pull_secrets=("Not_A_Name",)))


def test_a_template_gets_typed_values_and_cannot_override_the_operator(tmp_path: Path) -> None:
    template = tmp_path / "kernel-pod.yaml.j2"
    template.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: \"{{ kernel_pod_name }}\"\n  labels:\n    team: data\n"
        "    kernel_id: someone-else\nspec:\n  securityContext:\n    runAsUser: {{ kernel_uid }}\n"
        "  containers:\n  - name: kernel\n    image: \"{{ kernel_image }}\"\n"
        "    env:\n    - name: KERNEL_ID\n      value: forged\n"
    )
    launch = settle(KERNEL_CPUS="2")
    values = template_values(launch, "/specs/python_k8s")
    assert values["kernel_cpus"] == "2" and values["kernel_name"] == "python_k8s" and values["kernel_uid"] == 1000
    assert values["port_range"] == "0..0"
    manifest = kernel_pod_manifest(launch, template, "/specs/python_k8s")
    labels = manifest["metadata"]["labels"]
    assert labels["team"] == "data" and labels[LABEL_KERNEL_ID] == KID and labels[LABEL_SERVER] == SERVER
    assert manifest["metadata"]["namespace"] == "default"
    env = {e["name"]: e for e in manifest["spec"]["containers"][0]["env"]}
    assert env["KERNEL_ID"]["value"] == KID
    assert env[LAUNCH_TOKEN]["valueFrom"]["secretKeyRef"]["name"] == launch.token_ref.name


def test_enforce_operator_fields_fills_what_the_template_left_out() -> None:
    launch = settle(KubernetesSettings(host_network=True))
    pod = enforce_operator_fields({"spec": {"containers": [{"name": "k"}]}}, launch.pod, {"x": "y"})
    assert pod["metadata"] == {"namespace": "default", "labels": {"x": "y"}}
    # restricted by default: the Pod Security Standard's fields the template left unset are filled in
    assert pod["spec"]["securityContext"] == {"runAsUser": 1000, "runAsGroup": 100, "runAsNonRoot": True,
                                              "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["spec"]["hostNetwork"] is True and pod["spec"]["dnsPolicy"] == "ClusterFirstWithHostNet"

    opted_out = settle(KubernetesSettings(pod_security_restricted=False))
    pod = enforce_operator_fields({"spec": {"containers": [{"name": "k"}]}}, opted_out.pod, {})
    assert pod["spec"]["securityContext"] == {"runAsUser": 1000, "runAsGroup": 100}


def application(**changes: object) -> SparkApplicationSettings:
    launch = settle()
    base = dict(name="alice-app", namespace=launch.namespace, kernel_id=KID, image=launch.pod.image, uid=1000,
                gid=100, service_account="spark", env=launch.pod.env, token_ref=launch.token_ref,
                labels={"team": "data", LABEL_KERNEL_ID: KID}, executor_labels={LABEL_KERNEL_ID: KID})
    base.update(changes)
    return SparkApplicationSettings(**base)  # type: ignore[arg-type]


def test_the_spark_application_is_built_from_its_settings_alone() -> None:
    app = build_spark_application(application(executor_image="exec:1", driver_command=("python", "-m", "x")))
    assert app["apiVersion"] == "sparkoperator.k8s.io/v1beta2" and app["kind"] == "SparkApplication"
    assert app["metadata"] == {"name": "alice-app", "namespace": "default",
                               "labels": {"team": "data", LABEL_KERNEL_ID: KID}}
    driver, executor = app["spec"]["driver"], app["spec"]["executor"]
    token = [e for e in driver["env"] if e["name"] == LAUNCH_TOKEN]
    assert token == [{"name": LAUNCH_TOKEN, "valueFrom": {"secretKeyRef": {"name": settle().token_ref.name,
                                                                           "key": settle().token_ref.key}}}]
    assert all(e["name"] != LAUNCH_TOKEN for e in executor["env"]), "executors never get the token"
    assert TOKEN not in json.dumps(app)
    assert executor["image"] == "exec:1" and executor["labels"] == {LABEL_KERNEL_ID: KID, "component": "worker"}
    assert driver["template"]["spec"]["containers"][0]["command"] == ["python", "-m", "x"]
    assert build_spark_application(application())["spec"]["executor"]["image"] == "kernelfleet/kernel-py:dev"


def test_driver_and_executors_know_their_application_by_gateway_provisioners_names() -> None:
    """KERNEL_RESOURCE_NAME and KERNEL_CRD_GROUP/VERSION/PLURAL, as GP 0.5.0 set them for a Spark-operator kernel;
    a request's value of the same name does not win."""
    launch = settle()
    app = build_spark_application(application(env={**launch.pod.env, "KERNEL_RESOURCE_NAME": "forged"}))
    wanted = {"KERNEL_RESOURCE_NAME": "alice-app", "KERNEL_CRD_GROUP": "sparkoperator.k8s.io",
              "KERNEL_CRD_VERSION": "v1beta2", "KERNEL_CRD_PLURAL": "sparkapplications"}
    for role in ("driver", "executor"):
        env = {e["name"]: e.get("value") for e in app["spec"][role]["env"]}
        assert {k: env[k] for k in wanted} == wanted, role
        assert [e["name"] for e in app["spec"][role]["env"]].count("KERNEL_RESOURCE_NAME") == 1


@pytest.mark.parametrize(("changes", "message"), [
    ({"driver_memory": "1 g"}, "driver_memory='1 g' is not a Spark memory amount"),
    ({"executor_memory": "-1g"}, "executor_memory"),
    ({"spark_config_map": "Bad_Map"}, "spark_config_map"),
])
def test_spark_values_are_checked(changes: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=f"Kernel {KID}: {message}"):
        build_spark_application(application(**changes))


def test_spark_application_status_is_read_as_data() -> None:
    status = {"status": {"applicationState": {"state": "FAILED", "errorMessage": "no"},
                         "driverInfo": {"podName": "x-driver-1"}}}
    assert application_state(status) == ("FAILED", "no") and application_state(None) == ("", "")
    assert driver_pod_name(status, "app") == "x-driver-1" and driver_pod_name(None, "app") == "app-driver"


def test_the_kernelspecs_sparkapp_config_map_names_the_applications_spark_defaults() -> None:
    """GP's KERNEL_SPARKAPP_CONFIG_MAP, set in the kernelspec's env (a request may not: request_env.OPERATOR_ONLY),
    becomes spec.sparkConfigMap over the provisioner's spark_config_map, checked as a DNS subdomain."""
    from kernelfleet.provisioners.k8s.spark_operator import SparkOperatorProvisioner

    def launch_with(value: str) -> PodLaunch:  # the kernelspec's env is part of the launch environment
        container = dataclasses.replace(CONTAINER, env={**CONTAINER.env, "KERNEL_SPARKAPP_CONFIG_MAP": value})
        return settle_pod_launch(KubernetesSettings(), KID, SERVER, {"KERNEL_USERNAME": "alice"}, container)

    provisioner = SparkOperatorProvisioner(kernel_id=KID, spark_config_map="site-defaults")
    named = launch_with("team-defaults")
    assert build_spark_application(provisioner.application_settings(named, "app"))["spec"]["sparkConfigMap"] == \
        "team-defaults"
    assert build_spark_application(provisioner.application_settings(settle(), "app"))["spec"]["sparkConfigMap"] == \
        "site-defaults"
    with pytest.raises(ValueError, match="spark_config_map"):
        build_spark_application(provisioner.application_settings(launch_with("Bad_Map"), "app"))


def test_impersonation_makes_the_requesting_user_the_applications_proxy_user() -> None:
    """impersonation_enabled on a Spark-operator kernelspec: spec.proxyUser is the request's KERNEL_USERNAME, checked
    like spark-submit's --proxy-user (a user the kernelspec does not allow is refused, naming the kernel)."""
    from kernelfleet.provisioners.authorization import ImpersonationError
    from kernelfleet.provisioners.k8s.spark_operator import SparkOperatorProvisioner

    provisioner = SparkOperatorProvisioner(kernel_id=KID, impersonation_enabled=True, unauthorized_users={"mallory"})
    assert provisioner.runs_as_requesting_user()
    provisioner.launch_request = {"KERNEL_USERNAME": "alice"}
    assert build_spark_application(provisioner.application_settings(settle(), "app"))["spec"]["proxyUser"] == "alice"
    for refused in ("mallory", "bob; rm -rf /", "bob --proxy-user admin"):
        provisioner.launch_request = {"KERNEL_USERNAME": refused}
        with pytest.raises((ImpersonationError, PermissionError), match=f"Kernel {KID}"):
            provisioner.application_settings(settle(), "app")
    assert "proxyUser" not in build_spark_application(
        SparkOperatorProvisioner(kernel_id=KID).application_settings(settle(), "app"))["spec"]


GP_TEMPLATE = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: "{{ kernel_pod_name ~ '-data' }}"
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: "{{ kernel_pod_name ~ '-conf' }}"
  labels:
    role: conf
data:
  kernel: "{{ kernel_id }}"
---
apiVersion: v1
kind: Pod
metadata:
  name: "{{ kernel_pod_name }}"
spec:
  containers:
  - name: kernel
    image: "{{ kernel_image }}"
"""


def test_a_multi_document_template_is_refused_unless_its_kinds_are_allowed(tmp_path: Path) -> None:
    """GP created every document of kernel-pod.yaml.j2 and deleted only the pod; here the launch fails before
    anything is created unless the operator lists the kinds, naming the document and the setting."""
    template = tmp_path / "kernel-pod.yaml.j2"
    template.write_text(GP_TEMPLATE)
    with pytest.raises(PodSpecError) as err:
        kernel_manifests(settle(), template, "/specs/python_k8s")
    assert str(err.value) == (
        f"Kernel {KID}: document 0 (PersistentVolumeClaim 'alice-{KID}-data') of the pod template {template} is not "
        "created: this kernelspec's template_object_kinds allows no other kind")
    with pytest.raises(PodSpecError, match=r"document 1 .ConfigMap .* allows PersistentVolumeClaim"):
        kernel_manifests(settle(KubernetesSettings(template_object_kinds=("PersistentVolumeClaim",))), template)


def test_allowed_template_objects_are_the_kernels_own(tmp_path: Path) -> None:
    template = tmp_path / "kernel-pod.yaml.j2"
    template.write_text(GP_TEMPLATE)
    settings = KubernetesSettings(namespace="kernels", labels={"team": "a"},
                                  template_object_kinds=("PersistentVolumeClaim", "ConfigMap"))
    pod, others = kernel_manifests(settle(settings), template, "/specs/python_k8s")
    assert pod["kind"] == "Pod" and [o["kind"] for o in others] == ["PersistentVolumeClaim", "ConfigMap"]
    for obj in others:
        assert obj["metadata"]["namespace"] == "kernels"
        labels = obj["metadata"]["labels"]
        assert labels[LABEL_KERNEL_ID] == KID and labels[LABEL_SERVER] == SERVER and labels["team"] == "a"
    assert others[1]["metadata"]["labels"]["role"] == "conf" and others[1]["data"] == {"kernel": KID}
    for obj in (pod, *others):
        kubernetes_validate.validate(obj, "1.30", strict=True)


@pytest.mark.parametrize(("document", "refused"), [
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: kube-system}\n",
     "is in namespace 'kube-system': template objects go in the kernel's namespace 'default' only"),
    ("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/service-account-token\n",
     "may not set type 'kubernetes.io/service-account-token'"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: NodePort}\n",
     "may not set type 'NodePort': only ClusterIP Services"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {externalIPs: [1.2.3.4]}\n",
     "may not set externalIPs"),
    ("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: p}\nspec: {volumeName: someones-pv}\n",
     "may not set spec.volumeName"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, ownerReferences: [{uid: x}]}\n",
     "may not set metadata ownerReferences"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n", "Bad_Name"),
    ("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: r}\n",
     "an RBAC object would let a template grant rights"),
    ("apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n", "a cluster-scoped kind is no kernel's own"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {t: " + TOKEN + "}\n", "launch token"),
])
def test_template_objects_that_reach_beyond_the_kernel_are_refused(tmp_path: Path, document: str,
                                                                   refused: str) -> None:
    template = tmp_path / "kernel-pod.yaml.j2"
    template.write_text(document + "---\n" + GP_TEMPLATE.split("---\n")[-1])
    settings = KubernetesSettings(template_object_kinds=("PersistentVolumeClaim", "Secret", "ConfigMap", "Service"))
    with pytest.raises(PodSpecError) as err:
        kernel_manifests(settle(settings), template)
    assert str(err.value).startswith(f"Kernel {KID}: ") and refused in str(err.value), str(err.value)


@pytest.mark.parametrize(("kind", "why"), [("ClusterRole", "RBAC object"), ("Namespace", "cluster-scoped"),
                                           ("ServiceAccount", "identity"), ("Deployment", "does not create it")])
def test_only_namespaced_kernel_kinds_can_be_allowed(kind: str, why: str) -> None:
    with pytest.raises(PodSpecError, match=f"template_object_kinds lists '{kind}': .*{why}"):
        settle(KubernetesSettings(template_object_kinds=(kind,)))


def test_gps_sparkapplication_template_is_named_as_unused_with_the_settings_instead(tmp_path: Path) -> None:
    from kernelfleet.provisioners.k8s.spark_application import GP_TEMPLATE, unused_template_notice

    assert unused_template_notice(str(tmp_path)) is None and unused_template_notice(None) is None
    (tmp_path / GP_TEMPLATE).parent.mkdir(parents=True)
    (tmp_path / GP_TEMPLATE).write_text("apiVersion: sparkoperator.k8s.io/v1beta2\nkind: SparkApplication\n")
    notice = unused_template_notice(str(tmp_path))
    assert notice is not None and str(tmp_path / GP_TEMPLATE) in notice and "is not used" in notice
    assert "spark_conf" in notice and "KERNEL_SPARKAPP_CONFIG_MAP" in notice
