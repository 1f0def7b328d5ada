"""KernelManager.transport_encryption for Docker and Swarm kernels, watched from the wire (raw socket on lo).

The kernel containers use host networking, so the server's ZMQ traffic to them crosses lo. The launcher
inside the image makes the CurveZMQ keys; the image under test is KF_TEST_IMAGE (built from this tree).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from wire_capture import assert_wire, run_cell_on_the_wire

pytestmark = [pytest.mark.hostile, pytest.mark.timeout(180)]


@pytest.mark.parametrize(("policy", "encrypted"), [("disabled", False), ("auto", True), ("required", True)])
async def test_container_kernel_traffic_on_the_wire(
    kernels_dir: Path, docker_spec: Callable[..., str], provisioner: str,
    policy: str, encrypted: bool,
) -> None:
    name = docker_spec(provisioner, f"{provisioner.replace('-', '_')}_{policy}",
                       metadata={"supported_encryption": ["curve"]})  # as `jupyter docker-spec install` writes it
    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]),
                            transport_encryption=policy)
    result = await run_cell_on_the_wire(km)
    assert_wire(result, encrypted=encrypted)
