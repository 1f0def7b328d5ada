"""KernelManager.transport_encryption for a kernel pod on kubelite, watched from the wire (raw socket on lo).

Kernel pods use the host network here (``host_network``), so the server's ZMQ traffic to the pod crosses lo.
The launcher inside the image makes the CurveZMQ keys; the image under test is KF_TEST_IMAGE (built from this
tree).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from wire_capture import assert_wire, run_cell_on_the_wire

from kernelfleet.kubelite import KubeLite

pytestmark = [pytest.mark.hostile, pytest.mark.timeout(180)]


@pytest.fixture
def host_network() -> bool:
    """The capture reads lo: pods on the node's network put the kernel's traffic there."""
    return True


@pytest.mark.parametrize(("policy", "encrypted"), [("disabled", False), ("auto", True), ("required", True)])
async def test_pod_kernel_traffic_on_the_wire(
    kube: KubeLite, kernels_dir: Path, k8s_spec: Callable[..., str], policy: str, encrypted: bool
) -> None:
    name = k8s_spec(f"k8s_curve_{policy}", metadata={"supported_encryption": ["curve"]})
    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]),
                            transport_encryption=policy)
    result = await run_cell_on_the_wire(km)
    assert_wire(result, encrypted=encrypted)
