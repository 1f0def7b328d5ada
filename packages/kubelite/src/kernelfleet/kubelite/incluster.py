"""The in-cluster API access every pod gets on a cluster: the service-account directory mounted at
``/var/run/secrets/kubernetes.io/serviceaccount`` (``token``, ``ca.crt``, ``namespace``) and the
``KUBERNETES_SERVICE_HOST`` / ``KUBERNETES_SERVICE_PORT`` variables, so that a program in a pod (a Jupyter server
with ``load_incluster_config``) reaches the API server as itself.

On a cluster the ServiceAccount admission plugin adds a projected ``kube-api-access-*`` volume to the pod spec and
the kubelet fills it. Here the kubelet (``PodWorker``) asks ``ApiAccess`` for the directory and bind-mounts it
read-only into every container, without changing the stored pod spec; ``automountServiceAccountToken: false`` on
the pod or its ServiceAccount turns it off, as on a cluster, and so does a container that mounts something at that
path itself. The token is a kubelite static token of the pod's ServiceAccount (not a bound, expiring JWT).

``KubeLite.start_api`` makes the ``ApiAccess``: pods on the pod network reach the API at the network's gateway,
where kubelite also listens (its certificate carries that address); host-network pods at the node address.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
DIRECTORY = "kube-api-access"


@dataclass(frozen=True)
class ApiAccess:
    """How pods reach this API server; made by ``KubeLite.start_api``, read by the kubelet for each pod."""

    pod_network_host: str  #: the API's address on the pod network (its gateway)
    pod_network_port: int
    host_network_host: str  #: the API's address for hostNetwork pods
    host_network_port: int
    ca_pem: bytes
    issue_token: Callable[[str, str], str]  #: (namespace, service account) -> a bearer token of that account

    def environment(self, host_network: bool) -> dict[str, str]:
        """Pure: the variables the kubelet gives every container (those of the ``kubernetes`` Service)."""
        host, port = ((self.host_network_host, self.host_network_port) if host_network
                      else (self.pod_network_host, self.pod_network_port))
        return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": str(port),
                "KUBERNETES_SERVICE_PORT_HTTPS": str(port), "KUBERNETES_PORT": f"tcp://{host}:{port}",
                "KUBERNETES_PORT_443_TCP": f"tcp://{host}:{port}", "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
                "KUBERNETES_PORT_443_TCP_ADDR": host, "KUBERNETES_PORT_443_TCP_PORT": str(port)}


def automounts(pod: dict[str, Any], account: dict[str, Any] | None) -> bool:
    """Pure: whether the pod gets the token, as the admission plugin decides (the pod's field wins, then the
    ServiceAccount's, default yes)."""
    spec = pod.get("spec") or {}
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if account is not None and account.get("automountServiceAccountToken") is not None:
        return bool(account["automountServiceAccountToken"])
    return True


def mounts_it_itself(container: dict[str, Any]) -> bool:
    """Pure: a container with its own volume at the token path keeps it (the admission plugin adds none then)."""
    return any(str(m.get("mountPath", "")).rstrip("/") == MOUNT_PATH for m in container.get("volumeMounts") or [])


def write_directory(path: Path, token: str, ca_pem: bytes, namespace: str) -> None:
    """Blocking (the kubelet runs it in a thread): lay out the directory, world-readable as the projected volume's
    default mode 0644 makes it, so a pod's non-root user can read its own token."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    for name, content in (("token", token.encode()), ("ca.crt", ca_pem), ("namespace", namespace.encode())):
        (path / name).write_bytes(content)
        (path / name).chmod(0o644)
