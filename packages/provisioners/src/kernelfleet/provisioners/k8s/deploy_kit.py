"""The deployment kit: Kubernetes manifests for a Jupyter server that runs its kernels with Kernel Fleet, as pure
builders (settings in, API objects out), so the files in ``deploy/kubernetes/`` and ``jupyter k8s-spec deploy``
cannot drift apart.

What it makes, next to the RBAC of ``rbac.py`` (same layouts, same namespaces and service account):

- a **Deployment** ``kernelfleet-server`` of the application image (``kernelfleet/server``: jupyter_server,
  kernelfleet-provisioners and the kernelspecs), running as the server's ServiceAccount, whose in-cluster
  configuration (token and CA mounted by Kubernetes) the provisioners use; the HTTP token comes from a Secret the
  operator creates (never from a file of the kit);
- a **Service** ``kernelfleet-server`` with the HTTP port and the response port (the port kernels report to);
- a **DaemonSet** ``kernelfleet-image-puller`` that keeps every kernel image on every node (one idle container
  per image), so a kernel's first start does not wait for an image pull — GP's kernel-image-puller, without a
  container-runtime socket.

Every pod passes the Pod Security Standards' "restricted" level. ``jupyter k8s-spec deploy`` prints them; tests
apply them to kubelite (tests/k8s/test_deploy_kit.py) and compare the shipped files (tests/repo).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from kernelfleet.provisioners.k8s.rbac import PER_KERNEL, SHARED, VARIANTS, RbacSettings
from kernelfleet.provisioners.k8s.rbac import render as render_rbac

SERVER_NAME = "kernelfleet-server"
PULLER_NAME = "kernelfleet-image-puller"
PART_OF = {"app.kubernetes.io/name": "kernelfleet"}
#: The key of the operator's Secret that holds the server's HTTP token.
TOKEN_KEY = "token"


@dataclass(frozen=True)
class DeployKitSettings:
    """What an operator chooses; the RBAC part (namespaces, account, kernel ClusterRole) is ``rbac``'s."""

    server_image: str
    kernel_images: tuple[str, ...]
    layout: str = SHARED
    rbac: RbacSettings = field(default_factory=RbacSettings)
    http_port: int = 8888
    response_port: int = 8877
    token_secret: str = "kernelfleet-server-token"  #: the operator's Secret, key ``token``
    image_pull_policy: str = "IfNotPresent"

    def __post_init__(self) -> None:
        if self.layout not in VARIANTS:
            raise ValueError(f"unknown layout {self.layout!r}; choose one of {', '.join(VARIANTS)}")
        if not self.kernel_images:
            raise ValueError("the image puller needs at least one kernel image")


def _labels(component: str) -> dict[str, str]:
    return {**PART_OF, "app.kubernetes.io/component": component}


def _restricted_container() -> dict[str, Any]:
    """The container half of the "restricted" Pod Security Standard."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _restricted_pod() -> dict[str, Any]:
    """The pod half: jovyan (1000:100), as every Kernel Fleet image runs."""
    return {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100,
            "seccompProfile": {"type": "RuntimeDefault"}}


def server_environment(settings: DeployKitSettings) -> list[dict[str, Any]]:
    """Pure: the server container's variables: where kernels go, the response port, the kinds pod templates may
    create (the RBAC's ``template_kinds``); the HTTP token from the operator's Secret. The response address is the
    pod's own IP (the broker's default), which kernel pods reach."""
    env: list[dict[str, Any]] = [{"name": "KF_RESPONSE_PORT", "value": str(settings.response_port)}]
    if settings.layout == SHARED:
        env += [{"name": "KF_SHARED_NAMESPACE", "value": "true"},
                {"name": "KF_NAMESPACE", "value": settings.rbac.kernel_namespace}]
    else:
        env += [{"name": "KF_SHARED_NAMESPACE", "value": "false"},
                {"name": "KF_KERNEL_CLUSTER_ROLE", "value": settings.rbac.kernel_cluster_role}]
    if settings.rbac.template_kinds:
        env.append({"name": "KF_TEMPLATE_OBJECT_KINDS", "value": ",".join(settings.rbac.template_kinds)})
    env.append({"name": "JUPYTER_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": settings.token_secret, "key": TOKEN_KEY}}})
    return env


def server_deployment(settings: DeployKitSettings) -> dict[str, Any]:
    """Pure: the Jupyter server's Deployment (one replica: kernels belong to the server that started them)."""
    labels = _labels("server")
    container = {
        "name": "server",
        "image": settings.server_image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": ["jupyter", "server", "--ip=0.0.0.0", f"--port={settings.http_port}", "--no-browser",
                 "--ServerApp.port_retries=0"],
        "env": server_environment(settings),
        "ports": [{"name": "http", "containerPort": settings.http_port},
                  {"name": "response", "containerPort": settings.response_port}],
        "readinessProbe": {"httpGet": {"path": "/api", "port": "http"}, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": _restricted_container(),
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": SERVER_NAME, "namespace": settings.rbac.server_namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"serviceAccountName": settings.rbac.server_account, "securityContext": _restricted_pod(),
                         "containers": [container]},
            },
        },
    }


def server_service(settings: DeployKitSettings) -> dict[str, Any]:
    """Pure: the Service in front of the server: the HTTP port, and the response port kernels report to."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVER_NAME, "namespace": settings.rbac.server_namespace, "labels": _labels("server")},
        "spec": {"selector": _labels("server"),
                 "ports": [{"name": "http", "port": settings.http_port, "targetPort": "http"},
                           {"name": "response", "port": settings.response_port, "targetPort": "response"}]},
    }


def image_puller(settings: DeployKitSettings) -> dict[str, Any]:
    """Pure: the DaemonSet that keeps the kernel images on every node: one container per image that only waits
    (and ends at once on SIGTERM), tiny requests, no service-account token."""
    labels = _labels("image-puller")
    containers = [{
        "name": f"image-{index}",
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"],
        "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}},
        "securityContext": _restricted_container(),
    } for index, image in enumerate(settings.kernel_images)]
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": PULLER_NAME, "namespace": settings.rbac.server_namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"automountServiceAccountToken": False, "securityContext": _restricted_pod(),
                         "terminationGracePeriodSeconds": 5, "containers": containers},
            },
        },
    }


class _PlainDumper(yaml.SafeDumper):
    """Writes a dict used twice (labels and selector) twice, never as a YAML anchor and alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def manifests(settings: DeployKitSettings) -> list[dict[str, Any]]:
    """Pure: the server's objects (apply after the RBAC of the same layout, which makes the namespaces)."""
    return [server_deployment(settings), server_service(settings), image_puller(settings)]


def render(settings: DeployKitSettings, *, with_rbac: bool = False) -> str:
    """A multi-document YAML file for ``kubectl apply -f``; ``with_rbac`` puts the layout's RBAC first."""
    layout = "kernel-namespaces" if settings.layout == PER_KERNEL else "shared-namespace"
    head = (f"# Kernel Fleet: the Jupyter server, its Service and the kernel-image puller, {layout} layout\n"
            f"# (jupyter k8s-spec deploy --layout {layout}). Apply after rbac-{layout}.yaml, and create the HTTP\n"
            f"# token Secret first: {settings.token_secret} in {settings.rbac.server_namespace}, key {TOKEN_KEY}.\n")
    documents = [yaml.dump(obj, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False)
                 for obj in manifests(settings)]
    text = head + "---\n" + "---\n".join(documents)
    return (render_rbac(settings.layout, settings.rbac) + "---\n" + text) if with_rbac else text
