"""The SSH/local engine: ``distributed-provisioner`` starts kernels on hosts over SSH, or on this machine.

``distributed`` holds the provisioner, ``host_launchers`` the strategy it runs a host's launcher with (a local
process or SSH, chosen once per host); ``command`` the shell text, ``launch`` and ``tunnels`` what runs over a
connection, ``connections`` the per-loop connection pool, ``hosts`` host selection, ``local_process`` and
``adopted_process`` the processes of local launches. Nothing here imports another engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernelfleet.provisioners.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from kernelfleet.provisioners.ssh.distributed import DistributedProvisioner

__all__ = ["DistributedProvisioner"]
__getattr__ = lazy_exports(__name__, {"DistributedProvisioner": "distributed"})
