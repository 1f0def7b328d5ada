"""The least-privilege RBAC a Jupyter server running Kernel Fleet needs, as Kubernetes manifests: exactly the verbs
the Kubernetes and Spark-operator provisioners call, each rule commented with the operation that needs it.

Two layouts, as ``shared_namespace`` chooses: every kernel in one namespace (a Role there), or a namespace per kernel
(a ClusterRole: namespaces are created, and the kernels' ``kernel-controller`` ClusterRole is bound in each with the
``bind`` verb, so the server never needs to hold what it grants). ``jupyter k8s-spec rbac`` prints them;
``deploy/kubernetes/*.yaml`` are the defaults, and tests/k8s/test_k8s_rbac.py applies exactly these to kubelite and
shows that each verb is needed.

Two options widen them, each to exactly what it needs: ``template_kinds`` (the kernelspecs' ``template_object_kinds``:
the server creates, reads and deletes those objects of pod templates), and ``spark_driver_account`` (Spark on
Kubernetes in cluster mode, ``k8s.spark_submit``): the server's spark-submit applies the driver's Service and
ConfigMap, and the driver pod's own service account gets the ``spark-driver`` Role in the kernels' namespace, with
what Spark's driver does there (executor pods, their ConfigMap, its own Service at stop). In the kernel-namespaces
layout the same driver rules are the kernels' ClusterRole, bound in each kernel's namespace by the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from kernelfleet.provisioners.k8s.template_objects import TEMPLATE_KINDS

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
    template_kinds: tuple[str, ...] = ()  # the kernelspecs' template_object_kinds (KF_TEMPLATE_OBJECT_KINDS)
    spark_driver_account: str = ""  # Spark cluster mode: the driver pods' service account (empty: no Spark)
    spark_driver_role: str = "spark-driver"

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.template_kinds if kind not in TEMPLATE_KINDS]
        if unknown:
            raise ValueError(f"a pod template can create only {', '.join(TEMPLATE_KINDS)}, not {', '.join(unknown)}")


def _rule(groups: list[str], resources: list[str], verbs: list[str], why: str,
          names: list[str] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"apiGroups": groups, "resources": resources}
    if names:
        rule["resourceNames"] = names
    rule["verbs"] = verbs
    rule["#"] = why  # rendered as a comment by ``render``, never sent
    return rule


def kernel_rules(settings: RbacSettings | None = None) -> list[dict[str, Any]]:
    """What a kernel's own pod needs where the server runs it: pods, events, logs and the launch Secret; with
    ``settings``' options the pod templates' objects and spark-submit's."""
    settings = settings or RbacSettings()
    templated = [TEMPLATE_KINDS[kind] for kind in dict.fromkeys(settings.template_kinds)]
    secrets_why = "create/delete: the per-launch token Secret; get: replace a crashed server's leftover Secret"
    if any(kind.kind == "Secret" for kind in templated):
        secrets_why += "; and the pod templates' Secrets (template_object_kinds)"
    others = [kind for kind in templated if kind.kind != "Secret"]
    rules = [
        _rule([""], ["pods"], ["create", "get", "delete", "list", "watch", "patch"],
              "create/delete: the kernel pod; list/watch: the namespace's pod watch; get: replace a crashed "
              "server's leftover pod; patch: a warm pool's standby pod relabelled as the kernel that claimed it"),
        _rule([""], ["pods/log"], ["get"], "a failed launch's error carries the container's last output"),
        _rule([""], ["events"], ["list"], "a failed launch's error carries the scheduler's and kubelet's events"),
        _rule([""], ["secrets"], ["create", "get", "delete"], secrets_why),
        _rule(["sparkoperator.k8s.io"], ["sparkapplications"], ["create", "get", "delete", "list", "watch"],
              "spark-operator-provisioner only: the kernel's SparkApplication and its watch"),
    ]
    if others:
        rules.append(_rule([""], [kind.plural for kind in others], ["create", "get", "delete"],
                           "create/delete: the pod templates' " + ", ".join(kind.kind for kind in others)
                           + " (template_object_kinds); get: replace a crashed server's leftover"))
    if settings.spark_driver_account:
        rules.append(_rule([""], ["services", "configmaps"], ["patch", "delete"],
                           "spark-submit (Spark cluster mode): server-side apply of the driver's Service and "
                           "ConfigMap; delete: a submission that fails half-way"))
    return rules


def spark_driver_rules() -> list[dict[str, Any]]:
    """What Spark's driver pod does with its own service account, in its namespace (Spark 3.5)."""
    return [
        _rule([""], ["pods"], ["create", "get", "list", "watch", "delete", "deletecollection"],
              "executor pods: create/delete them, get the driver pod (their owner), list/watch their states; "
              "deletecollection: the executors at SparkContext.stop()"),
        _rule([""], ["configmaps"], ["create", "delete", "deletecollection"],
              "the executors' ConfigMap, made at start and deleted at stop"),
        _rule([""], ["services"], ["deletecollection"],
              "the driver's Service (spark-submit made it) at stop"),
        _rule([""], ["persistentvolumeclaims"], ["list"],
              "executors look for reusable claims (spark.kubernetes.driver.reusePersistentVolumeClaim)"),
    ]


def spark_driver_manifests(settings: RbacSettings) -> list[dict[str, Any]]:
    """The shared-namespace layout's ``spark-driver`` Role in the kernels' namespace, bound to the driver pods'
    service account (``service_account_name``, KERNEL_SERVICE_ACCOUNT_NAME)."""
    ns, role, account = settings.kernel_namespace, settings.spark_driver_role, settings.spark_driver_account
    made = [] if account == "default" else [  # every namespace has "default"; another account is made here
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(account, ns)}]
    return [
        *made,
        {"apiVersion": RBAC_API, "kind": "Role", "metadata": _meta(role, ns), "rules": spark_driver_rules()},
        {"apiVersion": RBAC_API, "kind": "RoleBinding", "metadata": _meta(role, ns),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
         "subjects": [{"kind": "ServiceAccount", "name": settings.spark_driver_account, "namespace": ns}]},
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
             *kernel_rules(settings)]
    driver = spark_driver_manifests(settings) if settings.spark_driver_account else []
    return [
        *_account(settings),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns)},
        {"apiVersion": RBAC_API, "kind": "Role", "metadata": _meta("kernelfleet-server", ns), "rules": rules},
        {"apiVersion": RBAC_API, "kind": "RoleBinding", "metadata": _meta("kernelfleet-server", ns),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kernelfleet-server"},
         "subjects": _subject(settings)},
        *driver,
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
        *kernel_rules(settings),
    ]
    return [
        *_account(settings),
        {"apiVersion": RBAC_API, "kind": "ClusterRole", "metadata": _meta("kernelfleet-server"), "rules": rules},
        {"apiVersion": RBAC_API, "kind": "ClusterRoleBinding", "metadata": _meta("kernelfleet-server"),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kernelfleet-server"},
         "subjects": _subject(settings)},
        {"apiVersion": RBAC_API, "kind": "ClusterRole", "metadata": _meta(role), "rules": spark_driver_rules()},
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
    options = "".join(f" --template-kind {kind}" for kind in settings.template_kinds)
    if settings.spark_driver_account:
        options += f" --spark-driver-account {settings.spark_driver_account}"
    head = (f"# Kernel Fleet: least-privilege RBAC, {variant} layout (jupyter k8s-spec rbac --layout {variant}"
            f"{options}).\n"
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
