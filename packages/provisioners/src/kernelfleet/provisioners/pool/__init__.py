"""Warm pools of standby launchers (issue 15, protocol 2.1): kernels claimed from a pool start without the
interpreter's start-up and the kernel's imports. ``manager`` keeps a pool's standbys, ``link`` is the server's
end of one registered standby, ``spec`` derives a pool's identity and the claim's environment (pure). Engines
start standbys through a ``StandbyEngine`` of their own package (``ssh.standbys`` for local processes)."""

from kernelfleet.provisioners.pool.link import ClaimFailed, StandbyLink
from kernelfleet.provisioners.pool.manager import PoolSettings, StandbyEngine, WarmPool, pool_for, pools

__all__ = ["ClaimFailed", "PoolSettings", "StandbyEngine", "StandbyLink", "WarmPool", "pool_for", "pools"]
