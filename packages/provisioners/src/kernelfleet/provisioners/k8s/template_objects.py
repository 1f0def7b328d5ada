"""The other documents of a kernelspec's pod template (a PersistentVolumeClaim, Secret, ConfigMap or Service next to
the Pod, as Gateway Provisioners' ``kernel-pod.yaml`` could hold them), checked as data before anything is sent.

GP created every document with the server's credentials and deleted only the pod: each kernel leaked its PVC or
Secret, and a template value could name any kind and namespace. Here a kernelspec creates only the kinds its
operator lists in ``template_object_kinds``, from a fixed table of namespaced kinds (``TEMPLATE_KINDS``; never RBAC
objects, never cluster-scoped kinds), in the kernel's namespace only, labelled with the kernel's labels (so the
orphan sweep finds them), each refused where it could reach beyond the kernel (a Secret minting a service-account
token, a Service with external IPs, a PVC binding an existing volume or copying another claim). The provisioner
creates them before the pod and deletes them by uid with the kernel's other objects (``k8s.provisioner``);
``k8s.rbac`` grants exactly the verbs their creation needs; ``sweep.kubernetes_objects`` lists the same kinds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelfleet.provisioners.k8s.pod import PodSpecError
from kernelfleet.provisioners.k8s.secret import check_token_absent
from kernelfleet.provisioners.spec_values import check_dns_label, check_dns_subdomain, check_label

MAX_TEMPLATE_OBJECTS = 16
#: The ownership record's key of a template object (``k8s.owned``): ``object:<Kind>/<name>``.
OWNED_PREFIX = "object:"
METADATA_KEYS = frozenset({"name", "namespace", "labels", "annotations"})


@dataclass(frozen=True)
class ObjectKind:
    """A namespaced kind a template may create: its API and the ``CoreV1Api`` methods that create, read, delete and
    list it (``<verb>_namespaced_<snake>``, ``list_<snake>_for_all_namespaces``)."""

    kind: str
    plural: str  # the RBAC resource
    snake: str  # the kubernetes client's method stem
    api_version: str = "v1"

    def method(self, verb: str) -> str:
        return f"list_{self.snake}_for_all_namespaces" if verb == "list_all" else f"{verb}_namespaced_{self.snake}"


TEMPLATE_KINDS: dict[str, ObjectKind] = {k.kind: k for k in (
    ObjectKind("PersistentVolumeClaim", "persistentvolumeclaims", "persistent_volume_claim"),
    ObjectKind("Secret", "secrets", "secret"),
    ObjectKind("ConfigMap", "configmaps", "config_map"),
    ObjectKind("Service", "services", "service"),
)}
#: Kinds that are never created from a template, with why (the message of a kernelspec that lists one).
NEVER: dict[str, str] = {
    **dict.fromkeys(("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"),
                    "an RBAC object would let a template grant rights"),
    **dict.fromkeys(("Namespace", "PersistentVolume", "StorageClass", "Node", "CustomResourceDefinition",
                     "PriorityClass", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"),
                    "a cluster-scoped kind is no kernel's own"),
    "ServiceAccount": "a service account is an identity: name an existing one with service_account_name",
    "Pod": "the template's one Pod is the kernel",
}
SECRET_TYPES = frozenset({"Opaque", "kubernetes.io/basic-auth", "kubernetes.io/ssh-auth", "kubernetes.io/tls",
                          "kubernetes.io/dockerconfigjson"})


def owned_key(kind: str, name: str) -> str:
    return f"{OWNED_PREFIX}{kind}/{name}"


def owned_kind(key: str) -> ObjectKind | None:
    """The kind of an ownership key made by ``owned_key`` (None for the kernel's other objects)."""
    if not key.startswith(OWNED_PREFIX):
        return None
    return TEMPLATE_KINDS.get(key[len(OWNED_PREFIX):].partition("/")[0])


def check_allowed_kinds(kernel_id: str, kinds: Collection[str]) -> frozenset[str]:
    """Pure: the operator's ``template_object_kinds``, each a kind of ``TEMPLATE_KINDS``; anything else is refused
    with the reason."""
    for kind in kinds:
        if kind not in TEMPLATE_KINDS:
            why = NEVER.get(kind, "Kernel Fleet does not create it from a template")
            raise PodSpecError(f"Kernel {kernel_id}: template_object_kinds lists {kind!r}: {why}; the kinds a "
                               f"template may create are {', '.join(TEMPLATE_KINDS)}")
    return frozenset(kinds)


def _where(path: Path, index: int, obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    return f"document {index} ({obj.get('kind')} {meta.get('name')!r}) of the pod template {path}"


def check_template_object(kernel_id: str, path: Path, index: int, obj: Mapping[str, Any], *, namespace: str,
                          labels: Mapping[str, str], allowed: Collection[str], token: str) -> dict[str, Any]:
    """Pure: one rendered document other than the Pod, as it will be created: of an allowed kind, in ``namespace``,
    with the kernel's ``labels`` over its own, and nothing that reaches beyond the kernel."""
    kind = obj.get("kind")
    where = _where(path, index, obj)
    if kind not in allowed:
        why = NEVER.get(str(kind)) or ("" if kind in TEMPLATE_KINDS else
                                       f"only {', '.join(TEMPLATE_KINDS)} can ever be allowed")
        allows = ", ".join(sorted(allowed)) or "no other kind"
        raise PodSpecError(f"Kernel {kernel_id}: {where} is not created: this kernelspec's template_object_kinds "
                           f"allows {allows}{f' ({why})' if why else ''}")
    spec_kind = TEMPLATE_KINDS[str(kind)]
    if obj.get("apiVersion") != spec_kind.api_version:
        raise PodSpecError(f"Kernel {kernel_id}: {where} must have apiVersion {spec_kind.api_version}")
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        raise PodSpecError(f"Kernel {kernel_id}: {where} needs metadata.name")
    extra = sorted(set(meta) - METADATA_KEYS)
    if extra:
        raise PodSpecError(f"Kernel {kernel_id}: {where} may not set metadata {', '.join(extra)} (only "
                           f"{', '.join(sorted(METADATA_KEYS))})")
    if meta.get("namespace", namespace) != namespace:
        raise PodSpecError(f"Kernel {kernel_id}: {where} is in namespace {meta.get('namespace')!r}: template "
                           f"objects go in the kernel's namespace {namespace!r} only")
    name = meta["name"]
    try:
        if kind == "Service":
            check_dns_label(kernel_id, "metadata.name", name)
        else:
            check_dns_subdomain(kernel_id, "metadata.name", name)
        own = meta.get("labels") or {}
        if not isinstance(own, Mapping):
            raise ValueError("metadata.labels must be a mapping")
        for key, value in own.items():
            check_label(kernel_id, str(key), str(value))
    except ValueError as err:
        raise PodSpecError(f"{err} (in {where})") from None
    _check_kind(kernel_id, where, str(kind), obj)
    checked = {**obj, "metadata": {**meta, "namespace": namespace, "labels": {**own, **labels}}}
    check_token_absent(kernel_id, checked, token)
    return checked


def _check_kind(kernel_id: str, where: str, kind: str, obj: Mapping[str, Any]) -> None:
    """What of each kind could reach beyond the kernel: refused."""
    spec = obj.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise PodSpecError(f"Kernel {kernel_id}: {where}: spec must be a mapping")
    refused: str | None = None
    if kind == "Secret" and obj.get("type", "Opaque") not in SECRET_TYPES:
        refused = (f"type {obj.get('type')!r} (a service-account token Secret would mint a token for any account "
                   f"of the namespace); allowed types: {', '.join(sorted(SECRET_TYPES))}")
    elif kind == "Service":
        if spec.get("type", "ClusterIP") != "ClusterIP":
            refused = f"type {spec.get('type')!r}: only ClusterIP Services (headless or not)"
        elif spec.get("externalIPs") or spec.get("externalName"):
            refused = "externalIPs / externalName: a kernel's Service stays inside the cluster"
    elif kind == "PersistentVolumeClaim":
        taken = [key for key in ("volumeName", "dataSource", "dataSourceRef") if spec.get(key)]
        if taken:
            refused = f"spec.{taken[0]}: a kernel's claim is a new volume, never an existing one or a copy"
    if refused:
        raise PodSpecError(f"Kernel {kernel_id}: {where} may not set {refused}")


def template_objects(kernel_id: str, path: Path, documents: list[tuple[int, dict[str, Any]]], *, namespace: str,
                     labels: Mapping[str, str], allowed: Collection[str], token: str) -> list[dict[str, Any]]:
    """Pure: every document but the Pod (``(index, document)``), checked; at most ``MAX_TEMPLATE_OBJECTS``, each
    kind and name once."""
    if len(documents) > MAX_TEMPLATE_OBJECTS:
        raise PodSpecError(f"Kernel {kernel_id}: the pod template {path} has {len(documents)} documents besides the "
                           f"Pod; at most {MAX_TEMPLATE_OBJECTS}")
    checked, seen = [], set()
    for index, obj in documents:
        one = check_template_object(kernel_id, path, index, obj, namespace=namespace, labels=labels,
                                    allowed=allowed, token=token)
        key = (one["kind"], one["metadata"]["name"])
        if key in seen:
            raise PodSpecError(f"Kernel {kernel_id}: {_where(path, index, obj)} repeats an earlier document's name")
        seen.add(key)
        checked.append(one)
    return checked
