"""The deployment kit's shipped files are exactly what ``jupyter k8s-spec deploy`` prints with its defaults (so file
and command cannot drift), every object is valid against the official schema, and every pod template passes the Pod
Security Standards' "restricted" level, checked by kubelite's PodSecurity implementation. That the kit runs is
tests/k8s/test_deploy_kit.py's job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kernelfleet.kubelite import pod_security, validation
from kernelfleet.provisioners.cli.k8s import DeployPrinter
from kernelfleet.provisioners.k8s import deploy_kit, rbac

ROOT = Path(__file__).resolve().parents[2]


def shipped(layout: str) -> Path:
    return ROOT / "deploy" / "kubernetes" / f"server-{layout}.yaml"


@pytest.mark.parametrize("layout", rbac.VARIANTS)
def test_shipped_files_are_the_commands_output(layout: str) -> None:
    printer = DeployPrinter(layout=layout)
    assert shipped(layout).read_text() == deploy_kit.render(printer.settings()), (
        f"{shipped(layout)} is stale: regenerate it with `jupyter k8s-spec deploy --layout {layout} > "
        f"deploy/kubernetes/server-{layout}.yaml`")
    out = subprocess.run([str(Path(sys.executable).parent / "jupyter"), "k8s-spec", "deploy", "--layout", layout],
                         capture_output=True, text=True, check=True).stdout
    assert out == shipped(layout).read_text()


@pytest.mark.parametrize("layout", rbac.VARIANTS)
def test_objects_are_valid_and_pods_restricted(layout: str) -> None:
    objects = [doc for doc in yaml.safe_load_all(shipped(layout).read_text()) if doc]
    assert [o["kind"] for o in objects] == ["Deployment", "Service", "DaemonSet"]
    for obj in objects:
        validation.validate(obj, strict=True, name_is_label=False)
        if obj["kind"] != "Service":
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": obj["spec"]["template"]["metadata"],
                   "spec": obj["spec"]["template"]["spec"]}
            assert pod_security.violations(pod, "restricted") == []
            assert obj["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    env = {e["name"]: e.get("value") for e in objects[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    if layout == rbac.SHARED:
        assert (env["KF_SHARED_NAMESPACE"], env["KF_NAMESPACE"]) == ("true", "kernels")
    else:
        assert (env["KF_SHARED_NAMESPACE"], env["KF_KERNEL_CLUSTER_ROLE"]) == ("false", "kernel-controller")
    assert env["KF_RESPONSE_PORT"] == "8877" and env["JUPYTER_TOKEN"] is None  # from the Secret, never a file


def test_with_rbac_puts_the_layouts_rbac_first() -> None:
    settings = DeployPrinter(layout=rbac.PER_KERNEL).settings()
    text = deploy_kit.render(settings, with_rbac=True)
    assert text.startswith(rbac.render(rbac.PER_KERNEL))
    assert text.endswith(deploy_kit.render(settings))


def test_template_kinds_reach_the_servers_rbac_and_environment() -> None:
    """``--template-kind``: the server's role gets create/get/delete on those kinds only, and its Deployment the
    matching KF_TEMPLATE_OBJECT_KINDS; a kind no template may create is refused."""
    settings = DeployPrinter(layout=rbac.SHARED, template_kinds=["ConfigMap", "Service"]).settings()
    (role,) = [o for o in rbac.manifests(rbac.SHARED, settings.rbac) if o["kind"] == "Role"]
    templated = [r for r in role["rules"] if "template_object_kinds" in r["#"]]
    assert [(r["resources"], r["verbs"]) for r in templated] == [(["configmaps", "services"],
                                                                   ["create", "get", "delete"])]
    env = {e["name"]: e.get("value") for e in deploy_kit.server_environment(settings)}
    assert env["KF_TEMPLATE_OBJECT_KINDS"] == "ConfigMap,Service"
    with pytest.raises(ValueError, match="not RoleBinding"):
        rbac.RbacSettings(template_kinds=("RoleBinding",))
