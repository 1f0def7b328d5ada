"""The least-privilege RBAC a Jupyter server running Kernel Fleet needs, as Kubernetes manifests: exactly the verbs
the Kubernetes and Spark-operator provisioners call, each rule commented with the operation that needs it.

Two layouts, as ``shared_namespace`` chooses: every kernel in one namespace (a Role there), or a namespace per kernel
(a ClusterRole: namespaces are created, and the kernels' ``kernel-controller`` ClusterRole is bound in each with the
``bind`` verb, so the server never needs to hold what it grants). ``jupyter k8s-spec rbac`` prints them;
``deploy/kubernetes/*.yaml`` are the defaults, and tests/k8s/test_k8s_rbac.py applies exactly these to kubelite and
shows that each verb is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

RBAC_API = "rbac.authorization.k8s.io/v1"
SHARED = "shared-namespace"
PER_KERNEL = "kernel-namespaces"
VARIANTS = (SHARED, PER_KERNEL)


@dataclass(frozen=True)
class RbacSettings:
    """Where the server runs and where its kernels go."""

    server_namespace: str = "kernelfleet"
    server_account: str = "kernelfleet"
    kernel_namespace: str = "kernels"  # shared-namespace layout: KF_NAMESPACE
    kernel_cluster_role: str = "kernel-controller"  # kernel-namespaces layout: KF_KERNEL_CLUSTER_ROLE


def _rule(groups: list[str], resources: list[str], verbs: list[str], why: str,
          names: list[str] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"apiGroups": groups, "resources": resources}
    if names:
        rule["resourceNames"] = names
    rule["verbs"] = verbs
    rule["#"] = why  # rendered as a comment by ``render``, never sent
    return rule


def kernel_rules() -> list[dict[str, Any]]:
    """What a kernel's own pod needs where the server runs it: pods, events, logs and the launch Secret."""
    return [
        _rule([""], ["pods"], ["create", "get", "delete", "list", "watch", "patch"],
              "create/delete: the kernel pod; list/watch: the namespace's pod watch; get: replace a crashed "
              "server's leftover pod; patch: a warm pool's standby pod relabelled as the kernel that claimed it"),
        _rule([""], ["pods/log"], ["get"], "a failed launch's error carries the container's last output"),
        _rule([""], ["events"], ["list"], "a failed launch's error carries the scheduler's and kubelet's events"),
        _rule([""], ["secrets"], ["create", "get", "delete"],
              "create/delete: the per-launch token Secret; get: replace a crashed server's leftover Secret"),
        _rule(["sparkoperator.k8s.io"], ["sparkapplications"], ["create", "get", "delete", "list", "watch"],
              "spark-operator-provisioner only: the kernel's SparkApplication and its watch"),
    ]


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {"app.kubernetes.io/name": "kernelfleet"}
    return meta


def _account(settings: RbacSettings) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(settings.server_namespace)},
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": _meta(settings.server_account, settings.server_namespace)}]


def _subject(settings: RbacSettings) -> list[dict[str, Any]]:
    return [{"kind": "ServiceAccount", "name": settings.server_account, "namespace": settings.server_namespace}]


def shared_namespace_manifests(settings: RbacSettings) -> list[dict[str, Any]]:
    """Kernels in ``kernel_namespace``: a Role there (and ``get`` on that namespace itself) bound to the server."""
    ns = settings.kernel_namespace
    rules = [_rule([""], ["namespaces"], ["get"], "a launch checks that the kernel namespace exists", [ns]),
             *kernel_rules()]
    return [
        *_account(settings),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns)},
        {"apiVersion": RBAC_API, "kind": "Role", "metadata": _meta("kernelfleet-server", ns), "rules": rules},
        {"apiVersion": RBAC_API, "kind": "RoleBinding", "metadata": _meta("kernelfleet-server", ns),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kernelfleet-server"},
         "subjects": _subject(settings)},
    ]


def kernel_namespaces_manifests(settings: RbacSettings) -> list[dict[str, Any]]:
    """A namespace per kernel: a ClusterRole for the server, and the kernels' own ClusterRole it binds."""
    role = settings.kernel_cluster_role
    rules = [
        _rule([""], ["namespaces"], ["create", "get", "delete", "list", "watch"],
              "create/delete: the kernel's namespace; list/watch: wait until it is gone; get: keep it across a "
              "restart"),
        _rule(["rbac.authorization.k8s.io"], ["rolebindings"], ["create"],
              f"bind {role} to the kernel's service account in its namespace"),
        _rule(["rbac.authorization.k8s.io"], ["clusterroles"], ["bind"],
              f"grant {role} without holding its permissions", [role]),
        *kernel_rules(),
    ]
    kernel = [
        _rule([""], ["pods"], ["create", "get", "list", "watch", "delete", "deletecollection"],
              "a Spark driver's executors"),
        _rule([""], ["services"], ["create", "get", "delete"], "a Spark driver's headless service"),
        _rule([""], ["configmaps"], ["create", "get", "list", "delete", "deletecollection"],
              "a Spark driver's executor configuration"),
        _rule([""], ["persistentvolumeclaims"], ["create", "get", "list", "delete", "deletecollection"],
              "a Spark driver's on-demand executor volumes"),
    ]
    return [
        *_account(settings),
        {"apiVersion": RBAC_API, "kind": "ClusterRole", "metadata": _meta("kernelfleet-server"), "rules": rules},
        {"apiVersion": RBAC_API, "kind": "ClusterRoleBinding", "metadata": _meta("kernelfleet-server"),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kernelfleet-server"},
         "subjects": _subject(settings)},
        {"apiVersion": RBAC_API, "kind": "ClusterRole", "metadata": _meta(role), "rules": kernel},
    ]


def manifests(variant: str, settings: RbacSettings | None = None) -> list[dict[str, Any]]:
    """The objects of ``variant`` (``shared-namespace`` or ``kernel-namespaces``), rule comments included."""
    settings = settings or RbacSettings()
    if variant == SHARED:
        return shared_namespace_manifests(settings)
    if variant == PER_KERNEL:
        return kernel_namespaces_manifests(settings)
    raise ValueError(f"unknown RBAC layout {variant!r}; choose one of {', '.join(VARIANTS)}")


def api_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects as sent to the API server: the rule comments removed."""
    return [{**obj, "rules": [{k: v for k, v in r.items() if k != "#"} for r in obj["rules"]]} if "rules" in obj
            else obj for obj in objects]


def render(variant: str, settings: RbacSettings | None = None) -> str:
    """A multi-document YAML file that ``kubectl apply -f`` takes, each rule preceded by why it is needed."""
    settings = settings or RbacSettings()
    head = (f"# Kernel Fleet: least-privilege RBAC, {variant} layout (jupyter k8s-spec rbac --layout {variant}).\n"
            f"# The Jupyter server runs as ServiceAccount {settings.server_namespace}/{settings.server_account}.\n")
    documents = []
    for obj in manifests(variant, settings):
        rules = obj.get("rules")
        body = {k: v for k, v in obj.items() if k != "rules"}
        text = yaml.safe_dump(body, sort_keys=False, default_flow_style=False)
        if rules is not None:
            text += "rules:\n"
            for rule in rules:
                text += f"# {rule['#']}\n"
                plain = {k: v for k, v in rule.items() if k != "#"}
                text += yaml.safe_dump([plain], sort_keys=False, default_flow_style=None)
        documents.append(text)
    return head + "---\n" + "---\n".join(documents)
