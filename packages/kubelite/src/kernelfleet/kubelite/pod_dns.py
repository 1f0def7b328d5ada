"""Service names inside pods, without a cluster DNS: each new container gets ``/etc/hosts`` entries (Docker's
``ExtraHosts``) for the Services of its namespace, each name pointing at the address of a running pod the Service
selects — what a headless Service's DNS record answers on a cluster.

That is what Spark on Kubernetes needs: the driver creates a headless Service (``<app>-driver-svc``) selecting its
own pod, then executor pods that connect to ``<app>-driver-svc.<namespace>.svc``. Names are fixed when a container is
created (a Service or pod made later is not seen by it); a Service with a ``clusterIP`` also resolves to a pod address,
as nothing routes cluster IPs here (no kube-proxy). The kubelet (``PodWorker._create``) calls ``service_hosts``.
"""

from __future__ import annotations

from typing import Any

from .resources import BUILTINS
from .store import Store

_SERVICES = next(rt for rt in BUILTINS if not rt.group and rt.plural == "services")
_PODS = next(rt for rt in BUILTINS if not rt.group and rt.plural == "pods")
CLUSTER_DOMAIN = "cluster.local"


def names_of(service: str, namespace: str) -> list[str]:
    """Pure: the names a pod in ``namespace`` resolves a Service by."""
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.{CLUSTER_DOMAIN}"]


def selected_ip(selector: dict[str, str], pods: list[dict[str, Any]]) -> str | None:
    """Pure: the address of the first running pod (by name) whose labels carry all of ``selector``."""
    if not selector:
        return None
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        status = pod.get("status") or {}
        if (status.get("podIP") and status.get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
                and all(labels.get(k) == v for k, v in selector.items())):
            return str(status["podIP"])
    return None


def service_hosts(store: Store, namespace: str, pod: dict[str, Any]) -> list[str]:
    """Docker ``ExtraHosts`` (``name:ip``) for the namespace's Services that select a running pod."""
    services = store.list(_SERVICES, namespace)
    if not services:
        return []
    pods = store.list(_PODS, namespace)
    hosts: list[str] = []
    for service in services:
        ip = selected_ip(dict((service.get("spec") or {}).get("selector") or {}), pods)
        if ip is not None:
            hosts += [f"{name}:{ip}" for name in names_of(str(service["metadata"]["name"]), namespace)]
    return hosts
