"""The kernel pod as data: typed, validated settings in, a Pod manifest out, and the checks every manifest passes.

This module does no I/O. ``build_pod`` is the default (a kubespawner-style function of its settings); a
kernelspec's own template goes through ``k8s_template`` and then through the same ``check_pod`` as a built pod, so
a template cannot do what the operator's policy forbids (host paths, host namespaces, prohibited ids, privileged
containers). The values that reach a manifest are parsed here first: quantities, names, volumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kernelfleet.provisioners.labels import kernel_labels
from kernelfleet.provisioners.spec_values import (  # PodSpecError, parse_quantity: also found here, as before
    PodSpecError,
    check_dns_label,
    check_dns_subdomain,
    check_label,
    parse_quantity,
)

GPU_RESOURCE = "nvidia.com/gpu"
VOLUME_SOURCES = frozenset({
    "emptyDir", "persistentVolumeClaim", "configMap", "secret", "nfs", "projected", "downwardAPI", "csi",
    "ephemeral", "hostPath",
})
MOUNT_KEYS = frozenset({"name", "mountPath", "readOnly", "subPath", "subPathExpr", "mountPropagation"})
TOLERATION_KEYS = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})


@dataclass(frozen=True)
class Resources:
    """Requests and limits, already parsed; empty means 'not set'."""

    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)

    def manifest(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        if self.requests:
            out["requests"] = dict(self.requests)
        if self.limits:
            out["limits"] = dict(self.limits)
        return out


def parse_resources(kernel_id: str, config: Mapping[str, Any]) -> Resources:
    """``{"requests": {...}, "limits": {...}}`` with every amount parsed."""
    unknown = set(config) - {"requests", "limits"}
    if unknown:
        raise PodSpecError(f"Kernel {kernel_id}: resources may only have requests and limits, not {sorted(unknown)}")
    parsed: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
    for section in ("requests", "limits"):
        for key, amount in (config.get(section) or {}).items():
            check_label(kernel_id, str(key), "")  # resource names have label-key syntax
            parsed[section][str(key)] = parse_quantity(kernel_id, f"resources.{section}.{key}", amount)
    return Resources(parsed["requests"], parsed["limits"])


def check_volume(kernel_id: str, volume: object, *, allow_host_path: bool) -> dict[str, Any]:
    """One pod volume: a name and exactly one known source; hostPath only when the operator allows it."""
    if not isinstance(volume, dict) or not isinstance(volume.get("name"), str):
        raise PodSpecError(f"Kernel {kernel_id}: a volume must be a mapping with a name, not {str(volume)[:80]!r}")
    check_dns_label(kernel_id, "volume name", volume["name"])
    sources = [key for key in volume if key != "name"]
    if len(sources) != 1 or sources[0] not in VOLUME_SOURCES:
        raise PodSpecError(
            f"Kernel {kernel_id}: volume {volume['name']!r} needs exactly one source of {sorted(VOLUME_SOURCES)}"
        )
    if sources[0] == "hostPath" and not allow_host_path:
        raise PodSpecError(
            f"Kernel {kernel_id}: volume {volume['name']!r} is a hostPath volume, which this kernelspec does not "
            "allow (allow_host_path_volumes is off)"
        )
    if not isinstance(volume[sources[0]], dict):
        raise PodSpecError(f"Kernel {kernel_id}: volume {volume['name']!r}: {sources[0]} must be a mapping")
    return dict(volume)


def check_mount(kernel_id: str, mount: object) -> dict[str, Any]:
    if not isinstance(mount, dict) or not isinstance(mount.get("name"), str) or not isinstance(
            mount.get("mountPath"), str) or not mount["mountPath"].startswith("/"):
        raise PodSpecError(f"Kernel {kernel_id}: a volume mount needs a name and an absolute mountPath, not "
                           f"{str(mount)[:80]!r}")
    unknown = set(mount) - MOUNT_KEYS
    if unknown:
        raise PodSpecError(f"Kernel {kernel_id}: volume mount {mount['name']!r} has unknown keys {sorted(unknown)}")
    return dict(mount)


def check_toleration(kernel_id: str, toleration: object) -> dict[str, Any]:
    if not isinstance(toleration, dict) or set(toleration) - TOLERATION_KEYS:
        raise PodSpecError(f"Kernel {kernel_id}: {str(toleration)[:80]!r} is not a toleration "
                           f"(keys: {sorted(TOLERATION_KEYS)})")
    return dict(toleration)


@dataclass(frozen=True)
class SecretKeyRef:
    """An environment variable whose value the kubelet reads from a Secret: the pod spec holds only this reference,
    so whoever may read pods cannot read the value."""

    name: str
    key: str

    def env_entry(self, variable: str) -> dict[str, Any]:
        return {"name": variable, "valueFrom": {"secretKeyRef": {"name": self.name, "key": self.key}}}


@dataclass(frozen=True)
class PodSettings:
    """Everything a kernel pod is made of; every field already validated by the provisioner."""

    name: str
    namespace: str
    kernel_id: str
    image: str
    env: Mapping[str, str]
    uid: int
    gid: int
    fs_group: int | None = 100
    service_account: str | None = None
    resources: Resources = field(default_factory=Resources)
    working_dir: str | None = None
    host_network: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] | None = None
    image_pull_secrets: tuple[str, ...] = ()
    image_pull_policy: str | None = None
    volumes: tuple[Mapping[str, Any], ...] = ()
    volume_mounts: tuple[Mapping[str, Any], ...] = ()
    termination_grace_period: int = 5
    container_name: str = "kernel"
    #: Variables passed by reference to a Secret instead of by value (the launch token).
    secret_env: Mapping[str, SecretKeyRef] = field(default_factory=dict)
    #: Pass the Pod Security Standards' "restricted" profile (``apply_restricted``); off only by the operator.
    restricted: bool = True


def env_entries(env: Mapping[str, str], secret_env: Mapping[str, SecretKeyRef] | None = None) -> list[dict[str, Any]]:
    """Container ``env`` entries: plain values, then the references to Secrets (a name in both goes by reference)."""
    refs = dict(secret_env or {})
    return [{"name": name, "value": value} for name, value in env.items() if name not in refs] + [
        ref.env_entry(name) for name, ref in refs.items()
    ]


def build_pod(s: PodSettings) -> dict[str, Any]:
    """The default kernel pod: one container running the image's own entry point (its bootstrap script)."""
    container: dict[str, Any] = {
        "name": s.container_name,
        "image": s.image,
        "env": env_entries(s.env, s.secret_env),
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    resources = s.resources.manifest()
    if resources:
        container["resources"] = resources
    if s.working_dir:
        container["workingDir"] = s.working_dir
    if s.image_pull_policy:
        container["imagePullPolicy"] = s.image_pull_policy
    if s.volume_mounts:
        container["volumeMounts"] = [dict(m) for m in s.volume_mounts]
    security: dict[str, Any] = {"runAsUser": s.uid, "runAsGroup": s.gid}
    if s.fs_group is not None:
        security["fsGroup"] = s.fs_group
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": s.termination_grace_period,
        "securityContext": security,
        "containers": [container],
    }
    if s.service_account:
        spec["serviceAccountName"] = s.service_account
    if s.host_network:
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    if s.node_selector:
        spec["nodeSelector"] = dict(s.node_selector)
    if s.tolerations:
        spec["tolerations"] = [dict(t) for t in s.tolerations]
    if s.affinity:
        spec["affinity"] = dict(s.affinity)
    if s.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in s.image_pull_secrets]
    if s.volumes:
        spec["volumes"] = [dict(v) for v in s.volumes]
    if s.restricted:
        apply_restricted(spec)
    metadata: dict[str, Any] = {
        "name": s.name,
        "namespace": s.namespace,
        "labels": kernel_labels(s.kernel_id, s.labels),
        "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false", **dict(s.annotations)},
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def apply_restricted(spec: dict[str, Any]) -> None:
    """Make a pod spec pass the Pod Security Standards' "restricted" level (what a namespace labelled
    ``pod-security.kubernetes.io/enforce: restricted`` admits): non-root, the runtime's default seccomp profile, no
    privilege escalation, every capability dropped. Only what the spec leaves unset is filled in, so a template that
    asks for more keeps it and is refused by the cluster with its own message. Called by ``build_pod`` and for
    templated pods by the provisioner; the images run as jovyan (1000:100), which this allows."""
    security = spec.get("securityContext")
    if not isinstance(security, dict):
        security = spec["securityContext"] = {}
    security.setdefault("runAsNonRoot", True)
    security.setdefault("seccompProfile", {"type": "RuntimeDefault"})
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or []:
            if not isinstance(container, dict):
                continue
            context = container.get("securityContext")
            if not isinstance(context, dict):
                context = container["securityContext"] = {}
            context.setdefault("allowPrivilegeEscalation", False)
            capabilities = context.get("capabilities")
            if not isinstance(capabilities, dict):
                capabilities = context["capabilities"] = {}
            drop = capabilities.get("drop")
            if not isinstance(drop, list):
                capabilities["drop"] = ["ALL"]
            elif "ALL" not in drop:
                drop.append("ALL")


@dataclass(frozen=True)
class PodPolicy:
    """What the operator allows in any kernel pod, built or rendered."""

    name: str
    namespace: str
    kernel_id: str
    prohibited_uids: frozenset[int] = frozenset({0})
    prohibited_gids: frozenset[int] = frozenset({0})
    allow_host_path: bool = False
    host_network: bool = False
    allow_privileged: bool = False
    #: Variables that may only come from their Secret, never as a literal value (the launch token).
    secret_env: Mapping[str, SecretKeyRef] = field(default_factory=dict)


def _ids(kernel_id: str, where: str, security: Mapping[str, Any], policy: PodPolicy) -> None:
    for key, prohibited in (("runAsUser", policy.prohibited_uids), ("runAsGroup", policy.prohibited_gids),
                            ("fsGroup", policy.prohibited_gids)):
        if key not in security:
            continue
        value = security[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**32 - 1:
            raise PodSpecError(f"Kernel {kernel_id}: {where}.{key}={value!r} is not a numeric id")
        if value in prohibited:
            raise PodSpecError(f"Kernel {kernel_id}: {where}.{key}={value} is prohibited for kernels on this server")
    groups = security.get("supplementalGroups") or []
    for value in groups if isinstance(groups, list) else [groups]:
        if not isinstance(value, int) or value in policy.prohibited_gids:
            raise PodSpecError(f"Kernel {kernel_id}: {where}.supplementalGroups {value!r} is not allowed")


def check_pod(pod: object, policy: PodPolicy) -> dict[str, Any]:
    """Refuse a manifest that is not one kernel Pod within the operator's policy; return it unchanged."""
    kid = policy.kernel_id
    if not isinstance(pod, dict) or pod.get("kind") != "Pod" or pod.get("apiVersion") != "v1":
        kind = pod.get("kind") if isinstance(pod, dict) else type(pod).__name__
        raise PodSpecError(f"Kernel {kid}: the pod template must produce one v1 Pod, not {kind!r}")
    meta, spec = pod.get("metadata"), pod.get("spec")
    if not isinstance(meta, dict) or not isinstance(spec, dict):
        raise PodSpecError(f"Kernel {kid}: the pod needs metadata and spec mappings")
    if meta.get("name") != policy.name or meta.get("namespace", policy.namespace) != policy.namespace:
        raise PodSpecError(
            f"Kernel {kid}: the pod must be {policy.namespace}/{policy.name}, not "
            f"{meta.get('namespace')}/{meta.get('name')}"
        )
    for key, value in (meta.get("labels") or {}).items():
        check_label(kid, str(key), str(value))
    for forbidden in ("hostPID", "hostIPC", "shareProcessNamespace", "nodeName"):
        if spec.get(forbidden) not in (None, False):
            raise PodSpecError(f"Kernel {kid}: the pod may not set {forbidden}")
    if spec.get("hostNetwork") and not policy.host_network:
        raise PodSpecError(f"Kernel {kid}: the pod may not use the host network (host_network is off)")
    if spec.get("serviceAccountName") is not None:
        check_dns_subdomain(kid, "serviceAccountName", str(spec["serviceAccountName"]))
    _ids(kid, "spec.securityContext", spec.get("securityContext") or {}, policy)
    for volume in spec.get("volumes") or []:
        check_volume(kid, volume, allow_host_path=policy.allow_host_path)
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise PodSpecError(f"Kernel {kid}: the pod has no containers")
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        for container in spec.get(kind) or []:
            if not isinstance(container, dict):
                raise PodSpecError(f"Kernel {kid}: {kind} entries must be mappings")
            where = f"{kind}[{container.get('name')}]"
            security = container.get("securityContext") or {}
            if (security.get("privileged") or security.get("capabilities", {}).get("add")) and \
                    not policy.allow_privileged:
                raise PodSpecError(f"Kernel {kid}: {where} may not be privileged or add capabilities")
            _ids(kid, f"{where}.securityContext", security, policy)
            for mount in container.get("volumeMounts") or []:
                check_mount(kid, mount)
            _check_secret_env(kid, where, container.get("env"), policy)
            resources = container.get("resources") or {}
            for section in ("requests", "limits"):
                for key, amount in (resources.get(section) or {}).items():
                    parse_quantity(kid, f"{where}.resources.{section}.{key}", amount)
    return pod


def _check_secret_env(kernel_id: str, where: str, env: object, policy: PodPolicy) -> None:
    """A secret variable (the launch token) is only ever a reference to its Secret: a literal value in the pod
    spec can be read by anyone allowed to get pods."""
    if not policy.secret_env or env is None:
        return
    if not isinstance(env, list):
        raise PodSpecError(f"Kernel {kernel_id}: {where}.env must be a list")
    for entry in env:
        name = entry.get("name") if isinstance(entry, dict) else None
        ref = policy.secret_env.get(name) if isinstance(name, str) else None
        if ref is None:
            continue
        if entry != ref.env_entry(name):
            raise PodSpecError(f"Kernel {kernel_id}: {where}.env {name} may only be the reference to Secret "
                               f"{ref.name} (key {ref.key}), never a value")


def merge_env(container: dict[str, Any], env: Mapping[str, str],
              secret_env: Mapping[str, SecretKeyRef] | None = None) -> None:
    """Give a template's container our variables (ours replace same-named ones; the template's others stay)."""
    ours = set(env) | set(secret_env or {})
    kept = [e for e in container.get("env") or [] if isinstance(e, dict) and e.get("name") not in ours]
    container["env"] = kept + env_entries(env, secret_env)
