"""KernelManager.transport_encryption on the embedded default, watched from the wire (a raw socket on lo).

The kernelspecs come from our own ``jupyter ssh-spec install`` (what an operator runs), so these tests
also show that the CLI declares what its launcher supports: curve for Python, nothing for R and Scala.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from kf_testing import connect, execute
from wire_capture import assert_wire, run_cell_on_the_wire

from kernelfleet.protocol import CommOp

pytestmark = pytest.mark.hostile

BIN = Path(sys.executable).parent
LAUNCHERS = Path(__file__).resolve().parents[2] / "launchers"


def cli_kernelspec(prefix: Path, *args: str) -> Path:
    """Install the embedded-default kernelspec with our CLI; return its kernels directory."""
    result = subprocess.run([str(BIN / "jupyter-ssh-spec"), "install", "--prefix", str(prefix), *args],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return prefix / "share" / "jupyter" / "kernels"


def launcher_argv(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def manager(kernels: Path, name: str, policy: str) -> AsyncKernelManager:
    return AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]),
                              transport_encryption=policy)


@pytest.mark.parametrize(("policy", "encrypted"), [("disabled", False), ("auto", True), ("required", True)])
async def test_local_kernel_traffic_on_the_wire(tmp_path: Path, policy: str, encrypted: bool) -> None:
    kernels = cli_kernelspec(tmp_path, "--kernel-name", "local_fleet")
    km = manager(kernels, "local_fleet", policy)
    result = await run_cell_on_the_wire(km)
    assert_wire(result, encrypted=encrypted)
    # The client got the kernel's key pair, and it is the pair the kernel served with (the handshake worked).
    assert ("curve_secretkey" in result.connection_info) == encrypted


async def test_gp_transport_encryption_placeholder_is_filled(
    kernels_dir: Path, make_kernelspec: Callable[..., str]
) -> None:
    """A Gateway Provisioners 0.5 kernelspec passes the policy on argv; the launcher gets it, never the literal."""
    argv = [sys.executable, "-m", "kernelfleet.launcher", "--kernel-id", "{kernel_id}", "--port-range",
            "{port_range}", "--response-address", "{response_address}", "--public-key", "{public_key}",
            "--transport-encryption", "{transport_encryption}"]
    name = make_kernelspec("gp_style", argv=argv, metadata={"supported_encryption": ["curve"]})
    for policy, expected in (("required", "required"), ("disabled", "")):
        km = manager(kernels_dir, name, policy)
        await km.start_kernel()
        try:
            pid = km.provisioner.local_process.pid
            # Answered by the launcher's long-lived supervisor only: the exec that follows the report is done.
            assert await km.provisioner.comm_request(CommOp.PING) is not None
            cmdline = launcher_argv(pid)
            value = cmdline[cmdline.index(b"--transport-encryption") + 1].decode()
            assert value == expected
            assert ("curve_publickey" in km.get_connection_info()) == (policy == "required")
        finally:
            await km.shutdown_kernel(now=True)


@pytest.mark.parametrize("language", ["r", "scala"])
async def test_required_is_refused_at_once_for_kernels_without_curve(tmp_path: Path, language: str) -> None:
    """IRkernel and Toree bind plaintext sockets: 'required' fails before anything starts, saying why."""
    name = f"fleet_{language}_{uuid.uuid4().hex[:6]}"
    kernels = cli_kernelspec(tmp_path, "--kernel-name", name, "--language", language,
                             "--launchers-dir", str(LAUNCHERS))
    spec = json.loads((kernels / name / "kernel.json").read_text())
    assert "supported_encryption" not in spec["metadata"]  # the CLI does not claim what the kernel cannot do
    km = manager(kernels, name, "required")
    with pytest.raises(RuntimeError, match="supported_encryption"):
        await km.start_kernel()
    assert not km.has_kernel

    # Declared by hand anyway (e.g. a copied GP kernelspec): the provisioner still knows the kernel cannot.
    spec["metadata"]["supported_encryption"] = ["curve"]
    (kernels / name / "kernel.json").write_text(json.dumps(spec))
    km = manager(kernels, name, "required")
    kernel = "IRkernel" if language == "r" else "Toree"
    try:
        with pytest.raises(RuntimeError, match=f"required.*{kernel}.*CurveZMQ"):
            await km.start_kernel()
    finally:
        if km.has_kernel:  # only when the refusal failed: do not leave a plaintext kernel behind
            await km.shutdown_kernel(now=True)
    assert not km.has_kernel
    assert km.provisioner is None or km.provisioner.pending is None  # no launch was ever waited for


async def test_restart_makes_a_new_key_pair(tmp_path: Path) -> None:
    """Each launch has its own keys; after a restart jupyter_client's client and control socket use the new
    ones (a stale pair would leave every channel silent), and a graceful shutdown goes over the control channel."""
    kernels = cli_kernelspec(tmp_path, "--kernel-name", "local_fleet")
    km = manager(kernels, "local_fleet", "required")
    await km.start_kernel()
    try:
        first = km.get_connection_info()["curve_publickey"]
        client = await connect(km)
        assert (await execute(client, "6 * 7"))["result"] == "42"
        client.stop_channels()
        await km.restart_kernel(now=True)
        assert km.get_connection_info()["curve_publickey"] != first
        client = await connect(km)
        assert (await execute(client, "6 * 8"))["result"] == "48"
        client.stop_channels()
    finally:
        await km.shutdown_kernel()
    assert not km.has_kernel
