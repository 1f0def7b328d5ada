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
import ipaddress
import logging
from typing import Any

import aiodocker

log = logging.getLogger("kubelite.network")

LABEL_MANAGED = "kubelite"
LABEL_INSTANCE = "kubelite.instance"


class PodIPs:
    """Pod addresses handed out before a pod's first container is created, as a CNI plugin gives the pod sandbox its
    IP before any container runs: so ``status.podIP`` is known to ``env[].valueFrom.fieldRef`` (Spark's driver binds
    to it). Released when the pod's containers are removed."""

    def __init__(self, subnet: str, gateway: str) -> None:
        self.network = ipaddress.ip_network(subnet, strict=False)
        self.taken = {ipaddress.ip_address(gateway)}
        self.next = 0

    def allocate(self) -> str:
        first, count = int(self.network.network_address) + 1, max(0, self.network.num_addresses - 2)
        for i in range(count):
            candidate = ipaddress.ip_address(first + (self.next + i) % count)
            if candidate not in self.taken:
                self.taken.add(candidate)
                self.next = (self.next + i + 1) % count
                return str(candidate)
        raise RuntimeError(f"pod network {self.network} has no free address")

    def release(self, ip: str) -> None:
        self.taken.discard(ipaddress.ip_address(ip))


class PodNetwork:
    """One Docker bridge network: created at start, removed (after every pod's containers) at stop."""

    def __init__(self, docker: aiodocker.Docker, instance: str) -> None:
        self.docker = docker
        self.name = f"kubelite-{instance}"
        self.instance = instance
        self.subnet: str | None = None
        self.gateway: str | None = None
        self._network: Any = None
        self.ips: PodIPs | None = None

    async def create(self) -> PodNetwork:
        """Docker picks a free subnet; the network is then made again with that subnet as its own, because only on a
        network with a configured subnet may a container get an address chosen before it starts (``PodIPs``)."""
        spec: dict[str, Any] = {"Name": self.name, "Driver": "bridge", "CheckDuplicate": True,
                                "Labels": {LABEL_MANAGED: "1", LABEL_INSTANCE: self.instance}}
        self._network = await self.docker.networks.create(spec)
        info = await self._network.show()
        config = ((info.get("IPAM") or {}).get("Config") or [{}])[0]
        self.subnet, self.gateway = config.get("Subnet"), config.get("Gateway")
        if self.subnet and self.gateway:
            await self._network.delete()
            self._network = await self.docker.networks.create(
                {**spec, "IPAM": {"Config": [{"Subnet": self.subnet, "Gateway": self.gateway}]}})
            self.ips = PodIPs(self.subnet, self.gateway)
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
