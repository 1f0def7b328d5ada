"""The resource types kubelite serves: which are namespaced, their kinds, and their field selectors."""

from __future__ import annotations

from dataclasses import dataclass, field

from .selectors import FieldGetter, field_getters


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    #: Whether spec and status are written through separate endpoints (``/status``).
    status_subresource: bool = False
    #: Names must be DNS-1123 labels (namespaces) rather than subdomains.
    name_is_label: bool = False
    #: Whether DELETE answers the object itself (pods, namespaces) or a Success Status.
    returns_deleted_object: bool = False
    #: Whether the object is validated against the official schema (no schema exists for CRDs).
    builtin: bool = True
    fields: dict[str, FieldGetter] = field(default_factory=dict)
    #: The verbs discovery lists for the type.
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    #: kubectl's abbreviations (``ns``, ``po``, ...), from discovery.
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)


_META = ("metadata.name", "metadata.namespace")

BUILTINS: list[ResourceType] = [
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, status_subresource=True,
                 name_is_label=True, returns_deleted_object=True,
                 fields=field_getters("metadata.name", "status.phase"), short_names=("ns",)),
    ResourceType("", "v1", "pods", "Pod", status_subresource=True, returns_deleted_object=True,
                 fields=field_getters(*_META, "spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                                      "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                                      "status.podIP", "status.nominatedNodeName"), short_names=("po",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", fields=field_getters(*_META), short_names=("sa",)),
    ResourceType("", "v1", "events", "Event",
                 fields=field_getters(*_META, "involvedObject.kind", "involvedObject.namespace",
                                      "involvedObject.name", "involvedObject.uid", "involvedObject.apiVersion",
                                      "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                                      "reportingComponent", "source", "type"), short_names=("ev",)),
    ResourceType("", "v1", "configmaps", "ConfigMap", fields=field_getters(*_META), short_names=("cm",)),
    ResourceType("", "v1", "secrets", "Secret", fields=field_getters(*_META, "type")),
    ResourceType("", "v1", "limitranges", "LimitRange", fields=field_getters(*_META)),
    ResourceType("", "v1", "resourcequotas", "ResourceQuota", status_subresource=True, fields=field_getters(*_META)),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", status_subresource=True,
                 fields=field_getters(*_META), short_names=("pvc",)),
    # The deployment kit's objects (workloads.py: Services are stored, Deployments and DaemonSets run pods).
    ResourceType("", "v1", "services", "Service", status_subresource=True, fields=field_getters(*_META),
                 short_names=("svc",)),
    ResourceType("apps", "v1", "deployments", "Deployment", status_subresource=True, fields=field_getters(*_META),
                 short_names=("deploy",)),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", status_subresource=True, fields=field_getters(*_META),
                 short_names=("ds",)),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", fields=field_getters(*_META)),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", fields=field_getters(*_META)),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False,
                 fields=field_getters("metadata.name")),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
                 namespaced=False, fields=field_getters("metadata.name")),
]

#: Reviews answered at once and never stored (``kubectl auth can-i``): served by the request entry, listed here for
#: discovery.
ACCESS_REVIEWS: list[ResourceType] = [
    ResourceType("authorization.k8s.io", "v1", plural, kind, namespaced=False, builtin=False, verbs=("create",))
    for plural, kind in (("selfsubjectaccessreviews", "SelfSubjectAccessReview"),
                         ("selfsubjectrulesreviews", "SelfSubjectRulesReview"))
]

SPARK_APPLICATIONS = ResourceType("sparkoperator.k8s.io", "v1beta2", "sparkapplications", "SparkApplication",
                                  status_subresource=True, builtin=False, fields=field_getters(*_META))


def custom_resource(group: str, version: str, plural: str, kind: str, namespaced: bool = True) -> ResourceType:
    """A CRD-like type: stored as given, with a status subresource, and only metadata checked."""
    return ResourceType(group, version, plural, kind, namespaced=namespaced, status_subresource=True,
                        builtin=False, fields=field_getters(*_META))
