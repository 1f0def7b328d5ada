"""The Pod Security Standards as the PodSecurity admission plugin checks them: a namespace's
``pod-security.kubernetes.io/enforce`` label (``privileged`` / ``baseline`` / ``restricted``, with ``-version``)
decides which checks a new pod must pass, and a failing pod is refused with the plugin's wording
(``violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "kernel" must set
securityContext.allowPrivilegeEscalation=false), ...``).

Pure functions of the pod and the namespace, called by ``admission.validate_pod`` when a pod is created. The checks
run in the plugin's order (by check id); AppArmor, SELinux and sysctls are not checked (see the README).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .errors import forbidden

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"
LEVELS = ("privileged", "baseline", "restricted")

#: Capabilities a baseline pod may add (the container runtime's default set).
BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})
#: Volume types a restricted pod may use.
RESTRICTED_VOLUMES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
})
_CONTAINER_KINDS = ("initContainers", "containers", "ephemeralContainers")

Violation = tuple[str, str]  # (forbidden reason, forbidden detail)


def _containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod.get("spec") or {}
    for kind in _CONTAINER_KINDS:
        yield from (c for c in spec.get(kind) or [] if isinstance(c, dict))


def _names(prefix: str, names: list[str]) -> str:
    """``container "a"`` / ``containers "a", "b"`` as the plugin pluralizes."""
    quoted = ", ".join(f'"{n}"' for n in names)
    return f"{prefix}{'s' if len(names) > 1 else ''} {quoted}"


def repr_go(text: str) -> str:
    """A string quoted as Go's %q prints it in the plugin's messages."""
    return f'"{text}"'


def _sc(c: dict[str, Any]) -> dict[str, Any]:
    return c.get("securityContext") or {}


def _pod_sc(pod: dict[str, Any]) -> dict[str, Any]:
    return (pod.get("spec") or {}).get("securityContext") or {}


def _allow_privilege_escalation(pod: dict[str, Any]) -> Violation | None:
    bad = [c["name"] for c in _containers(pod) if _sc(c).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return None
    return "allowPrivilegeEscalation != false", \
        f"{_names('container', bad)} must set securityContext.allowPrivilegeEscalation=false"


def _capabilities_baseline(pod: dict[str, Any]) -> Violation | None:
    details = []
    for c in _containers(pod):
        added = [cap for cap in (_sc(c).get("capabilities") or {}).get("add") or [] if cap not in BASELINE_CAPABILITIES]
        if added:
            details.append(f'{_names("container", [c["name"]])} must not include '
                           f'{", ".join(repr_go(a) for a in added)} in securityContext.capabilities.add')
    return ("non-default capabilities", "; ".join(details)) if details else None


def _capabilities_restricted(pod: dict[str, Any]) -> Violation | None:
    no_drop, details = [], []
    for c in _containers(pod):
        caps = _sc(c).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            no_drop.append(c["name"])
        added = [cap for cap in caps.get("add") or [] if cap != "NET_BIND_SERVICE"]
        if added:
            details.append(f'{_names("container", [c["name"]])} must not include '
                           f'{", ".join(repr_go(a) for a in added)} in securityContext.capabilities.add')
    if no_drop:
        details.insert(0, f'{_names("container", no_drop)} must set securityContext.capabilities.drop=["ALL"]')
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def _host_namespaces(pod: dict[str, Any]) -> Violation | None:
    spec = pod.get("spec") or {}
    used = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    return ("host namespaces", ", ".join(used)) if used else None


def _host_path_volumes(pod: dict[str, Any]) -> Violation | None:
    bad = [v["name"] for v in (pod.get("spec") or {}).get("volumes") or [] if "hostPath" in v]
    return ("hostPath volumes", _names("volume", bad)) if bad else None


def _host_ports(pod: dict[str, Any]) -> Violation | None:
    details = []
    for c in _containers(pod):
        ports = [str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")]
        if ports:
            details.append(f'{_names("container", [c["name"]])} uses hostPort{"s" if len(ports) > 1 else ""} '
                           f'{", ".join(ports)}')
    return ("hostPort", "; ".join(details)) if details else None


def _privileged(pod: dict[str, Any]) -> Violation | None:
    bad = [c["name"] for c in _containers(pod) if _sc(c).get("privileged")]
    return ("privileged", f"{_names('container', bad)} must not set securityContext.privileged=true") if bad else None


def _proc_mount(pod: dict[str, Any]) -> Violation | None:
    bad = [c["name"] for c in _containers(pod) if _sc(c).get("procMount") not in (None, "Default")]
    return ("procMount", f'{_names("container", bad)} must not set securityContext.procMount to "Unmasked"') \
        if bad else None


def _restricted_volumes(pod: dict[str, Any]) -> Violation | None:
    details = []
    for v in (pod.get("spec") or {}).get("volumes") or []:
        kinds = [k for k in v if k != "name" and k not in RESTRICTED_VOLUMES]
        if kinds:
            details.append(f'volume "{v["name"]}" uses restricted volume type "{kinds[0]}"')
    return ("restricted volume types", ", ".join(details)) if details else None


def _run_as_non_root(pod: dict[str, Any]) -> Violation | None:
    pod_value = _pod_sc(pod).get("runAsNonRoot")
    details = []
    if pod_value is False:
        details.append("pod must not set securityContext.runAsNonRoot=false")
    explicit_false = [c["name"] for c in _containers(pod) if _sc(c).get("runAsNonRoot") is False]
    if explicit_false:
        details.append(f"{_names('container', explicit_false)} must not set securityContext.runAsNonRoot=false")
    if pod_value is not True:
        unset = [c["name"] for c in _containers(pod) if _sc(c).get("runAsNonRoot") is None]
        if unset and pod_value is None:
            details.append(f"{_names('pod or container', unset)} must set securityContext.runAsNonRoot=true")
    return ("runAsNonRoot != true", "; ".join(details)) if details else None


def _run_as_user(pod: dict[str, Any]) -> Violation | None:
    details = []
    if _pod_sc(pod).get("runAsUser") == 0:
        details.append("pod must not set runAsUser=0")
    bad = [c["name"] for c in _containers(pod) if _sc(c).get("runAsUser") == 0]
    if bad:
        details.append(f"{_names('container', bad)} must not set runAsUser=0")
    return ("runAsUser=0", "; ".join(details)) if details else None


def _seccomp_type(sc: dict[str, Any]) -> str | None:
    return (sc.get("seccompProfile") or {}).get("type")


def _seccomp_baseline(pod: dict[str, Any]) -> Violation | None:
    details = []
    if _seccomp_type(_pod_sc(pod)) == "Unconfined":
        details.append('pod must not set securityContext.seccompProfile.type to "Unconfined"')
    bad = [c["name"] for c in _containers(pod) if _seccomp_type(_sc(c)) == "Unconfined"]
    if bad:
        details.append(f'{_names("container", bad)} must not set securityContext.seccompProfile.type to "Unconfined"')
    return ("seccompProfile", "; ".join(details)) if details else None


def _seccomp_restricted(pod: dict[str, Any]) -> Violation | None:
    allowed = ("RuntimeDefault", "Localhost")
    pod_type = _seccomp_type(_pod_sc(pod))
    details = []
    if pod_type is not None and pod_type not in allowed:
        details.append(f'pod must not set securityContext.seccompProfile.type to "{pod_type}"')
    bad: dict[str, list[str]] = {}
    unset = []
    for c in _containers(pod):
        kind = _seccomp_type(_sc(c))
        if kind is None:
            unset.append(c["name"])
        elif kind not in allowed:
            bad.setdefault(kind, []).append(c["name"])
    for kind, names in bad.items():
        details.append(f'{_names("container", names)} must not set securityContext.seccompProfile.type to "{kind}"')
    if pod_type is None and unset:
        details.append(f'{_names("pod or container", unset)} must set securityContext.seccompProfile.type to '
                       '"RuntimeDefault" or "Localhost"')
    return ("seccompProfile", "; ".join(details)) if details else None


Check = Callable[[dict[str, Any]], Violation | None]
# (check, level it belongs to), in the plugin's order; restricted's versions replace baseline's where they overlap.
_CHECKS: list[tuple[str, Check, str]] = [
    ("allowPrivilegeEscalation", _allow_privilege_escalation, "restricted"),
    ("capabilities_baseline", _capabilities_baseline, "baseline"),
    ("capabilities_restricted", _capabilities_restricted, "restricted"),
    ("hostNamespaces", _host_namespaces, "baseline"),
    ("hostPathVolumes", _host_path_volumes, "baseline"),
    ("hostPorts", _host_ports, "baseline"),
    ("privileged", _privileged, "baseline"),
    ("procMount", _proc_mount, "baseline"),
    ("restrictedVolumes", _restricted_volumes, "restricted"),
    ("runAsNonRoot", _run_as_non_root, "restricted"),
    ("runAsUser", _run_as_user, "restricted"),
    ("seccompProfile_baseline", _seccomp_baseline, "baseline"),
    ("seccompProfile_restricted", _seccomp_restricted, "restricted"),
]
_OVERRIDDEN_BY_RESTRICTED = {"hostPathVolumes", "seccompProfile_baseline", "capabilities_baseline"}


def violations(pod: dict[str, Any], level: str) -> list[Violation]:
    """What ``pod`` does that ``level`` forbids, in the plugin's order (empty: allowed)."""
    if level not in ("baseline", "restricted"):
        return []
    found = []
    for check_id, check, check_level in _CHECKS:
        if check_level == "restricted" and level == "baseline":
            continue
        if level == "restricted" and check_id in _OVERRIDDEN_BY_RESTRICTED:
            continue
        violation = check(pod)
        if violation is not None:
            found.append(violation)
    return found


def enforced_level(namespace: dict[str, Any] | None) -> tuple[str, str]:
    """(level, version) a namespace's labels enforce; ``privileged`` when unlabelled."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get(ENFORCE_LABEL, "privileged")
    if level not in LEVELS:
        level = "restricted"  # the plugin treats an unparseable level as the most restrictive
    return level, labels.get(ENFORCE_VERSION_LABEL) or "latest"


def check_pod_security(pod: dict[str, Any], namespace: dict[str, Any] | None) -> None:
    """Refuse (403) a pod its namespace's enforce level forbids, with the PodSecurity plugin's message."""
    level, version = enforced_level(namespace)
    found = violations(pod, level)
    if not found:
        return
    text = ", ".join(f"{reason} ({detail})" for reason, detail in found)
    name = str((pod.get("metadata") or {}).get("name", ""))
    raise forbidden("pods", "", name, f'violates PodSecurity "{level}:{version}": {text}')
