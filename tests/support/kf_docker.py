"""What the Docker and Swarm tests share: the image under test, the docker CLI and the leftover check.

The CLI is the tests' own view of Docker, independent of the provisioners' aiodocker client.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

IMAGE = os.environ.get("KF_TEST_IMAGE", "kernelfleet/kernel-py:dev")
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker")


async def docker_cli(*args: str, check: bool = True) -> str:
    """The docker CLI, without blocking the loop."""
    if shutil.which(DOCKER) is None:
        pytest.fail(f"the docker CLI ({DOCKER}) is not installed; run tools/setup-machine")
    proc = await asyncio.create_subprocess_exec(
        DOCKER, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): {err.decode().strip()}")
    return out.decode()


async def leftovers(kernel_id: str) -> list[str]:
    """Containers, services and secrets that still carry this kernel's label."""
    label = f"label=kernel_id={kernel_id}"
    containers = (await docker_cli("ps", "-aq", "--filter", label)).split()
    services = (await docker_cli("service", "ls", "-q", "--filter", label)).split()
    secrets = (await docker_cli("secret", "ls", "-q", "--filter", label)).split()
    return ([f"container {c}" for c in containers] + [f"service {s}" for s in services]
            + [f"secret {s}" for s in secrets])
