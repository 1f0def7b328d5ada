"""What the orphan sweep finds and what removing it gave: plain, frozen data shared by every engine's part.

An ``Orphan`` names one object on one engine by what removal goes by (a Docker id, a Kubernetes uid, a YARN
application id, a process group id), never by name alone: a name may meanwhile belong to something else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from kernelfleet.provisioners.ssh.connections import SSHSettings

LOCAL = "local"
SSH = "ssh"
DOCKER = "docker"
SWARM = "swarm"
KUBERNETES = "kubernetes"
YARN = "yarn"
ENGINES = (LOCAL, SSH, DOCKER, SWARM, KUBERNETES, YARN)


class EngineUnavailable(RuntimeError):
    """The engine is not configured here or did not answer; the sweep reports it and goes on with the others."""


@dataclass(frozen=True)
class SSHTarget:
    """A host kernels may run on and how this server logs in there (a distributed-provisioner's settings)."""

    host: str
    settings: SSHSettings


@dataclass(frozen=True)
class YarnTarget:
    """A ResourceManager (or HA pair) kernels may run on and how this server authenticates there (a
    yarn-provisioner's settings: ``endpoints`` normalised, ``authorization_hook`` '' for YARN's simple auth)."""

    endpoints: tuple[str, ...]
    authorization_hook: str = ""


@dataclass(frozen=True)
class Orphan:
    """One object of this server's that no session claims.

    ``object_id`` is what removal goes by: a Docker id, a Kubernetes uid, a YARN application id, a process group
    id. ``location`` is the Kubernetes namespace, the SSH host or the RM endpoint; ``log_path`` the launcher's log
    file on an SSH host (removed with it).
    ``server_id`` is the identity it carried: removal checks it again where the engine allows.
    """

    engine: str
    kind: str
    name: str
    object_id: str
    kernel_id: str
    age: float
    server_id: str
    location: str = ""
    log_path: str = ""
    ssh: SSHTarget | None = field(default=None, compare=False, repr=False)
    yarn: YarnTarget | None = field(default=None, compare=False, repr=False)


class Outcome(enum.Enum):
    REMOVED = "removed"
    GONE = "gone"  # it had already disappeared
    LEFT = "left alone"  # the id now names something that is not this server's kernel object
    FAILED = "failed"


@dataclass(frozen=True)
class Removal:
    orphan: Orphan
    outcome: Outcome
    message: str = ""


class Orphans(list[Orphan]):
    """The orphans found, and the engines that could not be searched (engine or ``ssh:<host>`` -> why)."""

    def __init__(self, orphans: list[Orphan] | None = None, unavailable: dict[str, str] | None = None) -> None:
        super().__init__(orphans or [])
        self.unavailable: dict[str, str] = dict(unavailable or {})
