"""The pod network of one kubelite instance: a Docker bridge network of its own, on which every pod that does not
use the host network gets its own IP (``status.podIP``), as a CNI plugin gives each pod an address on a real node.

``KubeLite.start`` creates it (named ``kubelite-<instance>``, labelled ``kubelite.instance``) and ``KubeLite.stop``
removes it; the kubelet attaches each pod's first container to it and the pod's other containers share that
container's network namespace. The host reaches pods at their IPs, and pods reach the host at the network's
gateway (``KubeLite.pod_network.gateway``), where a test's response broker listens, as a server reachable from the
pod network does on a cluster. Docker's default ``bridge`` (docker0) and other networks are never touched.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import aiodocker

log = logging.getLogger("kubelite.network")

LABEL_MANAGED = "kubelite"
LABEL_INSTANCE = "kubelite.instance"


class PodNetwork:
    """One Docker bridge network: created at start, removed (after every pod's containers) at stop."""

    def __init__(self, docker: aiodocker.Docker, instance: str) -> None:
        self.docker = docker
        self.name = f"kubelite-{instance}"
        self.instance = instance
        self.subnet: str | None = None
        self.gateway: str | None = None
        self._network: Any = None

    async def create(self) -> PodNetwork:
        self._network = await self.docker.networks.create({
            "Name": self.name, "Driver": "bridge", "CheckDuplicate": True,
            "Labels": {LABEL_MANAGED: "1", LABEL_INSTANCE: self.instance},
        })
        info = await self._network.show()
        config = ((info.get("IPAM") or {}).get("Config") or [{}])[0]
        self.subnet, self.gateway = config.get("Subnet"), config.get("Gateway")
        log.info("kubelite: pod network %s (%s, gateway %s)", self.name, self.subnet, self.gateway)
        return self

    def ip_of(self, container_info: dict[str, Any]) -> str | None:
        """A container's address on this network, from Docker's inspect answer."""
        networks = (container_info.get("NetworkSettings") or {}).get("Networks") or {}
        return (networks.get(self.name) or {}).get("IPAddress") or None

    async def remove(self) -> None:
        if self._network is None:
            return
        network, self._network = self._network, None
        with contextlib.suppress(aiodocker.DockerError):
            await network.delete()


async def remove_networks(docker: aiodocker.Docker, labels: dict[str, str]) -> int:
    """Remove the Docker networks carrying all ``labels`` (those a crashed kubelite left); returns how many went."""
    found = await docker.networks.list(filters={"label": [f"{k}={v}" for k, v in labels.items()]})
    removed = 0
    for info in found:
        with contextlib.suppress(aiodocker.DockerError):
            await (await docker.networks.get(info["Id"])).delete()
            removed += 1
    return removed
