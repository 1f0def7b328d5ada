"""What Docker is asked to create, as data: a frozen ``DockerLaunch`` in, the container's create config (Docker) or
the service's task template (Swarm) out, as ``build_pod`` is for Kubernetes.

No I/O and no engine client: ``DockerProvisioner.container_config`` and ``DockerSwarmProvisioner.task_template`` only
gather the settled launch (``container.settle_container`` plus the Docker settings) and call these, and the unit
tests call them without a Docker engine. The launch token is in neither: the container gets it as a file (Docker:
copied in before start; Swarm: a Docker secret), and the environment names only its path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kernelfleet.protocol.contract import LAUNCH_TOKEN


@dataclass(frozen=True)
class DockerLaunch:
    """One kernel's container, decided: image, ids, directory, environment (without the token), labels, and the
    kernelspec's Docker settings."""

    image: str
    uid: int
    gid: int
    env: Mapping[str, str]
    labels: Mapping[str, str]
    network: str
    init: bool = True
    working_dir: str | None = None
    mounts: tuple[Mapping[str, Any], ...] = ()
    no_new_privileges: bool = True
    memory_bytes: int = 0

    def __post_init__(self) -> None:
        if LAUNCH_TOKEN in self.env:
            raise ValueError("the launch token must reach the container as a file, never in its environment")


@dataclass(frozen=True)
class TokenSecret:
    """The Swarm secret that carries the launch token into the task, as a file readable by the kernel only."""

    secret_id: str | None
    secret_name: str | None
    file_name: str


def container_config(launch: DockerLaunch) -> dict[str, Any]:
    """Docker's create config for the kernel container (``POST /containers/create``)."""
    host_config: dict[str, Any] = {"NetworkMode": launch.network, "Init": launch.init}
    if launch.mounts:
        host_config["Mounts"] = [dict(m) for m in launch.mounts]
    if launch.no_new_privileges:
        host_config["SecurityOpt"] = ["no-new-privileges"]
    if launch.memory_bytes:  # swap as large as memory: no swapping, the limit is where the kernel is OOM-killed
        host_config.update(Memory=launch.memory_bytes, MemorySwap=launch.memory_bytes)
    config: dict[str, Any] = {
        "Image": launch.image,
        "Env": [f"{name}={value}" for name, value in launch.env.items()],
        "Labels": dict(launch.labels),
        "User": f"{launch.uid}:{launch.gid}",
        "HostConfig": host_config,
    }
    if launch.working_dir:
        config["WorkingDir"] = launch.working_dir
    return config


def task_template(launch: DockerLaunch, secret: TokenSecret) -> dict[str, Any]:
    """The Swarm service's task template: one task, never restarted, the token as a 0400 secret file."""
    spec: dict[str, Any] = {
        "Image": launch.image,
        "Env": dict(launch.env),  # aiodocker turns the mapping into NAME=value entries
        "Labels": dict(launch.labels),
        "User": f"{launch.uid}:{launch.gid}",
        "Init": launch.init,
        "Secrets": [{
            "SecretID": secret.secret_id,
            "SecretName": secret.secret_name,
            "File": {"Name": secret.file_name, "UID": str(launch.uid), "GID": str(launch.gid), "Mode": 0o400},
        }],
    }
    if launch.mounts:
        spec["Mounts"] = [dict(m) for m in launch.mounts]
    if launch.working_dir:
        spec["Dir"] = launch.working_dir
    template: dict[str, Any] = {"ContainerSpec": spec, "RestartPolicy": {"Condition": "none", "MaxAttempts": 0}}
    if launch.memory_bytes:
        template["Resources"] = {"Limits": {"MemoryBytes": launch.memory_bytes}}
    if launch.network and launch.network != "bridge":  # swarm tasks are on the node's bridge by default
        template["Networks"] = [{"Target": launch.network}]
    return template
