"""The Docker engine: ``docker-provisioner`` (a container per kernel) and ``docker-swarm-provisioner`` (a service).

``provisioner`` and ``swarm`` hold the two provisioners, ``common`` what they share (ports, labels, mounts),
``engine`` the per-loop Docker client and event stream. ``kernelfleet.provisioners.docker.DockerProvisioner``
and ``.DockerSwarmProvisioner`` keep working as before the engines became subpackages; they are imported only
when read, so importing ``docker.engine`` (the sweep does) does not load the provisioners.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernelfleet.provisioners.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from kernelfleet.provisioners.docker.provisioner import DockerProvisioner
    from kernelfleet.provisioners.docker.swarm import DockerSwarmProvisioner

__all__ = ["DockerProvisioner", "DockerSwarmProvisioner"]
__getattr__ = lazy_exports(__name__, {"DockerProvisioner": "provisioner", "DockerSwarmProvisioner": "swarm"})
