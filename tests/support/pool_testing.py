"""What the warm-pool tests of the container engines share (tests/docker, tests/k8s): the one pool a test made, its
being full, and a pooled start (the kernelspec's first start is cold and makes the pool). Waits are on the pool's
change notifications, never on sleeps."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from jupyter_client import AsyncKernelManager
from kf_testing import manager

from kernelfleet.provisioners.pool import WarmPool, pools

WAIT = 120.0


def the_pool() -> WarmPool:
    (pool,) = pools()
    return pool


async def full(pool: WarmPool) -> None:
    await asyncio.wait_for(pool.until(lambda p: len(p.idle) == p.settings.size), WAIT)


async def start_pooled(kernels_dir: Path, name: str, **kwargs: Any) -> AsyncKernelManager:
    """The first start of the kernelspec is cold and creates its pool; the next one, once it is full, is pooled."""
    warmup = manager(kernels_dir, name)
    await warmup.start_kernel()
    await warmup.shutdown_kernel(now=True)
    pool = the_pool()
    await full(pool)
    km = manager(kernels_dir, name)
    await km.start_kernel(**kwargs)
    assert pool.stats["claimed"] == 1, pool.stats
    return km
