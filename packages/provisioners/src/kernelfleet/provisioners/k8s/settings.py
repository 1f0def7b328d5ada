"""A Kubernetes launch as data: the kernelspec's settings and the request in, one frozen ``PodLaunch`` out.

``settle_pod_launch`` decides everything a launch needs before the API server is asked for anything — the pod's
name, its namespace (shared, requested or the kernel's own), service account, resources, volumes, labels, the
kernel's environment and the launch-token Secret — and refuses what the operator did not allow, naming the
setting that would allow it. ``kernel_manifests`` turns that value into the pod (the built-in pod or the
kernelspec's template, whose other documents the operator may allow) and checks it against the operator's policy.
No I/O here but reading a template file, no engine import: ``KubernetesProvisioner`` calls these in ``pre_launch``
and keeps only the result, and the unit tests call them without a cluster (as KubeSpawner's ``make_pod``).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelfleet.protocol import contract
from kernelfleet.protocol.contract import LAUNCH_TOKEN
from kernelfleet.provisioners.container import ContainerChoice
from kernelfleet.provisioners.k8s.pod import (
    GPU_RESOURCE,
    PodPolicy,
    PodSettings,
    PodSpecError,
    Resources,
    SecretKeyRef,
    build_pod,
    check_mount,
    check_pod,
    check_toleration,
    check_volume,
    parse_quantity,
    parse_resources,
)
from kernelfleet.provisioners.k8s.secret import build_launch_secret, check_token_absent, launch_token_ref
from kernelfleet.provisioners.k8s.template import enforce_operator_fields, render_template, split_pod
from kernelfleet.provisioners.k8s.template_objects import check_allowed_kinds, template_objects
from kernelfleet.provisioners.labels import kernel_labels
from kernelfleet.provisioners.request_env import mapping_list
from kernelfleet.provisioners.server_identity import LABEL_SERVER
from kernelfleet.provisioners.spec_values import check_dns_label, check_dns_subdomain, check_label, dns_label

# Request variable -> (section, resource) of the kernel container's resources.
CLIENT_RESOURCES: dict[str, tuple[str, str]] = {
    "KERNEL_CPUS": ("requests", "cpu"),
    "KERNEL_MEMORY": ("requests", "memory"),
    "KERNEL_GPUS": ("requests", GPU_RESOURCE),
    "KERNEL_CPUS_LIMIT": ("limits", "cpu"),
    "KERNEL_MEMORY_LIMIT": ("limits", "memory"),
    "KERNEL_GPUS_LIMIT": ("limits", GPU_RESOURCE),
}
VOLUME_REQUESTS = ("KERNEL_VOLUMES", "KERNEL_VOLUME_MOUNTS")


@dataclass(frozen=True)
class KubernetesSettings:
    """The kernelspec's Kubernetes configuration (``KubernetesProvisioner``'s traits), read once per launch."""

    namespace: str = "default"
    shared_namespace: bool = True
    allow_client_namespace: bool = False
    service_account_name: str = "default"
    allow_client_service_account: bool = False
    allow_client_resources: bool = True
    allow_client_volumes: bool = False
    allow_host_path_volumes: bool = False
    host_network: bool = False
    resources: Mapping[str, Any] = field(default_factory=dict)
    volumes: tuple[Mapping[str, Any], ...] = ()
    volume_mounts: tuple[Mapping[str, Any], ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] = field(default_factory=dict)
    image_pull_secrets: tuple[str, ...] = ()
    image_pull_policy: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    fs_group: int | None = 100
    termination_grace_period: int = 5
    prohibited_uids: frozenset[int] = frozenset({0})
    prohibited_gids: frozenset[int] = frozenset({0})
    pod_security_restricted: bool = True  # kernel pods pass the "restricted" Pod Security Standard
    template_object_kinds: tuple[str, ...] = ()  # kinds a pod template may create next to the Pod

    def closed_request_names(self) -> dict[str, str]:
        """Request names this configuration closes, each with the setting that opens it (``pre_launch`` refuses
        them before their value is read)."""
        return {} if self.allow_client_volumes else dict.fromkeys(VOLUME_REQUESTS, "allow_client_volumes")


@dataclass(frozen=True)
class PodLaunch:
    """Everything one launch of a kernel pod needs, decided before the API server is asked for anything."""

    kernel_id: str
    server_id: str
    pod_name: str
    requested_pod_name: str | None  # the request's KERNEL_POD_NAME, for error messages
    namespace: str
    created_namespace: bool  # a namespace of the kernel's own, made for it and deleted with it
    service_account: str
    env: Mapping[str, str]  # the kernel's environment, LAUNCH_TOKEN included (it goes to the Secret only)
    token_ref: SecretKeyRef
    secret: Mapping[str, Any]  # the launch-token Secret's manifest
    pod: PodSettings
    policy: PodPolicy
    template_kinds: frozenset[str] = frozenset()  # checked template_object_kinds

    @property
    def token(self) -> str:
        return self.env.get(LAUNCH_TOKEN, "")


def object_labels(kernel_id: str, server_id: str, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels of every object a kernel creates: ``labels``, the kernel's id and the server's identity (by which
    the orphan sweep finds what a crashed server left)."""
    return kernel_labels(kernel_id, {**labels, LABEL_SERVER: server_id})


def plain_env(env: Mapping[str, str]) -> dict[str, str]:
    """The kernel's variables that may appear in an object's spec: all but the launch token."""
    return {name: value for name, value in env.items() if name != LAUNCH_TOKEN}


def choose_namespace(s: KubernetesSettings, kernel_id: str, env: Mapping[str, str], pod_name: str) -> tuple[str, bool]:
    """(namespace, made for this kernel): the request's KERNEL_NAMESPACE if allowed, else the shared one, else a
    namespace named after the pod."""
    requested = env.get("KERNEL_NAMESPACE")
    if requested:
        check_dns_label(kernel_id, "KERNEL_NAMESPACE", requested)
        if requested == s.namespace and s.shared_namespace:
            return requested, False
        if not s.allow_client_namespace:
            raise PermissionError(
                f"Kernel {kernel_id}: KERNEL_NAMESPACE={requested!r} was requested, but this kernelspec does not let "
                "requests choose the namespace (allow_client_namespace is off)"
            )
        return requested, False
    if s.shared_namespace:
        return check_dns_label(kernel_id, "namespace", s.namespace), False
    return pod_name, True


def choose_service_account(s: KubernetesSettings, kernel_id: str, env: Mapping[str, str]) -> str:
    configured = check_dns_subdomain(kernel_id, "service_account_name", s.service_account_name)
    requested = env.get("KERNEL_SERVICE_ACCOUNT_NAME")
    if not requested or requested == configured:
        return configured
    check_dns_subdomain(kernel_id, "KERNEL_SERVICE_ACCOUNT_NAME", requested)
    if not s.allow_client_service_account:
        raise PermissionError(
            f"Kernel {kernel_id}: KERNEL_SERVICE_ACCOUNT_NAME={requested!r} was requested, but this kernelspec does "
            "not let requests choose the service account (allow_client_service_account is off)"
        )
    return requested


def choose_resources(s: KubernetesSettings, kernel_id: str, env: Mapping[str, str]) -> Resources:
    base = parse_resources(kernel_id, s.resources)
    requests, limits = dict(base.requests), dict(base.limits)
    for name, (section, resource) in CLIENT_RESOURCES.items():
        value = env.get(name)
        if not value:
            continue
        amount = parse_quantity(kernel_id, name, value)
        if not s.allow_client_resources:
            raise PermissionError(f"Kernel {kernel_id}: {name} was requested, but this kernelspec does not let "
                                  "requests set resources (allow_client_resources is off)")
        (requests if section == "requests" else limits)[resource] = amount
    return Resources(requests, limits)


def choose_volumes(s: KubernetesSettings, kernel_id: str,
                   env: Mapping[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The kernelspec's volumes and mounts, plus a request's: pre_launch has already refused the request names
    closed by the kernelspec (``closed_request_names``) before any value was parsed; here the value is parsed
    (bounded, alias-free YAML) and each item's error names the variable."""
    allow_host_path = s.allow_host_path_volumes
    volumes = [check_volume(kernel_id, v, allow_host_path=allow_host_path) for v in s.volumes]
    mounts = [check_mount(kernel_id, m) for m in s.volume_mounts]
    for name, target in zip(VOLUME_REQUESTS, (volumes, mounts), strict=True):
        raw = env.get(name)
        if not raw:
            continue
        items = mapping_list(kernel_id, name, raw)  # JSON, or GP's YAML flow lists
        try:
            target.extend(check_volume(kernel_id, v, allow_host_path=allow_host_path)
                          if name == "KERNEL_VOLUMES" else check_mount(kernel_id, v) for v in items)
        except ValueError as err:  # PodSpecError, K8sNameError
            raise PodSpecError(f"{err} (in {name})") from None
    return volumes, mounts


def settle_pod_launch(s: KubernetesSettings, kernel_id: str, server_id: str, request: Mapping[str, str],
                      container: ContainerChoice) -> PodLaunch:
    """Decide one launch of a kernel pod from the kernelspec's settings ``s``, the request's variables ``request``
    and the container choices; raises (naming the kernel and the setting) what the operator does not allow."""
    requested_pod = request.get("KERNEL_POD_NAME") or None
    pod_name = dns_label(requested_pod or f"{request.get('KERNEL_USERNAME', '')}-{kernel_id}")
    namespace, created_namespace = choose_namespace(s, kernel_id, request, pod_name)
    service_account = choose_service_account(s, kernel_id, request)
    resources = choose_resources(s, kernel_id, request)
    volumes, mounts = choose_volumes(s, kernel_id, request)
    env = {**container.env, "KERNEL_POD_NAME": pod_name, "KERNEL_NAMESPACE": namespace,
           "KERNEL_SERVICE_ACCOUNT_NAME": service_account}
    for key, value in s.labels.items():
        check_label(kernel_id, key, value)
    labels = object_labels(kernel_id, server_id, s.labels)
    token_ref = launch_token_ref(kernel_id, pod_name)
    secret = build_launch_secret(token_ref, namespace, kernel_id, env.get(LAUNCH_TOKEN, ""), labels)
    pod = PodSettings(
        name=pod_name,
        namespace=namespace,
        kernel_id=kernel_id,
        image=container.image,
        env=plain_env(env),
        secret_env={LAUNCH_TOKEN: token_ref},
        uid=container.uid,
        gid=container.gid,
        fs_group=s.fs_group,
        service_account=service_account,
        resources=resources,
        working_dir=container.working_dir,
        host_network=s.host_network,
        labels=labels,
        annotations=dict(s.annotations),
        node_selector=dict(s.node_selector),
        tolerations=tuple(check_toleration(kernel_id, t) for t in s.tolerations),
        affinity=dict(s.affinity) or None,
        image_pull_secrets=tuple(check_dns_subdomain(kernel_id, "image_pull_secrets", n)
                                 for n in s.image_pull_secrets),
        image_pull_policy=s.image_pull_policy or None,
        volumes=tuple(volumes),
        volume_mounts=tuple(mounts),
        termination_grace_period=s.termination_grace_period,
        restricted=s.pod_security_restricted,
    )
    policy = PodPolicy(
        name=pod_name, namespace=namespace, kernel_id=kernel_id, prohibited_uids=s.prohibited_uids,
        prohibited_gids=s.prohibited_gids, allow_host_path=s.allow_host_path_volumes, host_network=s.host_network,
        secret_env={LAUNCH_TOKEN: token_ref},
    )
    return PodLaunch(kernel_id=kernel_id, server_id=server_id, pod_name=pod_name, requested_pod_name=requested_pod,
                     namespace=namespace, created_namespace=created_namespace, service_account=service_account, env=env,
                     token_ref=token_ref, secret=secret, pod=pod, policy=policy,
                     template_kinds=check_allowed_kinds(kernel_id, s.template_object_kinds))


def template_values(launch: PodLaunch, spec_dir: str = "") -> dict[str, Any]:
    """What a kernelspec's template may use: GP's names, all typed and validated (other KERNEL_* as strings)."""
    settings, env = launch.pod, launch.env
    values: dict[str, Any] = {name.lower(): value for name, value in env.items() if name.startswith("KERNEL_")}
    values.update(
        kernel_id=launch.kernel_id,
        kernel_pod_name=settings.name,
        kernel_namespace=settings.namespace,
        kernel_service_account_name=settings.service_account,
        kernel_uid=settings.uid,
        kernel_gid=settings.gid,
        kernel_image=settings.image,
        kernel_name=posixpath.basename(str(spec_dir).rstrip("/")) if spec_dir else "",
        port_range=env.get(contract.PORT_RANGE),
        response_address=env.get(contract.RESPONSE_ADDRESS),
        public_key=env.get(contract.PUBLIC_KEY),
    )
    values.pop("kernel_working_dir", None)
    if settings.working_dir:
        values["kernel_working_dir"] = settings.working_dir
    for name in CLIENT_RESOURCES:
        values.pop(name.lower(), None)
    for name, (section, resource) in CLIENT_RESOURCES.items():
        amount = (settings.resources.requests if section == "requests" else settings.resources.limits).get(resource)
        if amount is not None:
            values[name.lower()] = amount
    values.pop("kernel_volumes", None)
    values.pop("kernel_volume_mounts", None)
    if settings.volumes:
        values["kernel_volumes"] = [dict(v) for v in settings.volumes]
    if settings.volume_mounts:
        values["kernel_volume_mounts"] = [dict(m) for m in settings.volume_mounts]
    return values


def kernel_manifests(launch: PodLaunch, template: Path | None = None,
                     spec_dir: str = "") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The pod to create and the template's other objects (``template_objects``, created before it): the
    kernelspec's ``template`` rendered with ``template_values`` (the operator's fields enforced over the pod), or the
    built-in pod and nothing else; the pod checked against the policy, everything for the launch token."""
    others: list[dict[str, Any]] = []
    if template is not None:
        rendered, documents = split_pod(launch.kernel_id, template,
                                        render_template(launch.kernel_id, template, template_values(launch, spec_dir)))
        pod = enforce_operator_fields(rendered, launch.pod, object_labels(launch.kernel_id, launch.server_id, {}))
        others = template_objects(launch.kernel_id, template, documents, namespace=launch.namespace,
                                  labels=launch.pod.labels, allowed=launch.template_kinds, token=launch.token)
    else:
        pod = build_pod(launch.pod)
    manifest = check_pod(pod, launch.policy)
    check_token_absent(launch.kernel_id, manifest, launch.token)
    return manifest, others


def kernel_pod_manifest(launch: PodLaunch, template: Path | None = None, spec_dir: str = "") -> dict[str, Any]:
    """The pod of ``kernel_manifests`` (unit tests, and callers that create nothing else)."""
    return kernel_manifests(launch, template, spec_dir)[0]
