"""KernelManager.transport_encryption for a kernel on an SSH host, watched from the wire (raw socket on lo).

The "host" is a real sshd on 127.0.0.3; the kernel binds there and the server's ZMQ traffic to it crosses
lo, where an eavesdropper reads code and output in clear text unless the launcher served CurveZMQ.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from sshd import SshCluster
from wire_capture import assert_wire, run_cell_on_the_wire

pytestmark = pytest.mark.hostile


@pytest.mark.parametrize(("policy", "encrypted"), [("disabled", False), ("auto", True), ("required", True)])
async def test_ssh_kernel_traffic_on_the_wire(
    kernels_dir: Path, make_kernelspec: Callable[..., str], ssh_cluster: SshCluster, remote_log_dir: Path,
    policy: str, encrypted: bool,
) -> None:
    name = make_kernelspec(
        f"ssh_curve_{policy}",
        config={**ssh_cluster.provisioner_config(), "remote_hosts": ["127.0.0.3"],
                "remote_log_dir": str(remote_log_dir)},
        metadata={"supported_encryption": ["curve"]},  # as `jupyter ssh-spec install` writes it for Python
    )
    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]),
                            transport_encryption=policy)
    result = await run_cell_on_the_wire(km)
    assert result.connection_info["ip"] == "127.0.0.3"
    assert_wire(result, encrypted=encrypted)
