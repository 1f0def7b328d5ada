"""Signals through the embedded default (distributed-provisioner on localhost, the real launcher).

SIGINT, SIGTERM and SIGKILL keep their comm ops; the signals of protocol 2.2's allow-list (SIGUSR1, SIGHUP, ...)
reach the kernel by name over the authenticated comm port, where Gateway Provisioners sent raw numbers: a handler a
cell installed runs and its output arrives on iopub. Anything else is refused with an error naming the kernel and
the signal, and so is a signal sent to a launcher that predates protocol 2.2 (the launcher of commit
``OLD_LAUNCHER_COMMIT``, the last one without the op, run from its own source), whose error names the version needed.
The kernel is unharmed by every refusal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Callable
from io import BytesIO
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous import AsyncKernelClient
from kf_testing import SIGNAL_HANDLER_CELL, connect, execute, interrupt_busy_cell, manager, printed

from kernelfleet.provisioners.kernel_signals import SignalNotDelivered

pytestmark = pytest.mark.timeout(120)

# The last commit whose launcher has no signal op (protocol 2.1): the "older launcher" of the refusal test.
OLD_LAUNCHER_COMMIT = "0d142c9b15d85f2b7b9c4a78355747b036fc3d15"
OLD_LAUNCHER_ARCHIVE = Path(__file__).parents[1] / "fixtures" / "launcher-python-0.1.0.tar.gz"


@pytest.fixture
async def kernel(
    kernels_dir: Path, make_kernelspec: Callable[..., str]
) -> AsyncIterator[tuple[AsyncKernelManager, AsyncKernelClient]]:
    """A local kernel of the current launcher and a ready client; shut down afterwards."""
    km = manager(kernels_dir, make_kernelspec())
    await km.start_kernel()
    client = await connect(km)
    try:
        yield km, client
    finally:
        client.stop_channels()
        await km.shutdown_kernel(now=True)


async def test_an_allowed_signal_reaches_the_kernels_own_handler(
    kernel: tuple[AsyncKernelManager, AsyncKernelClient], caplog: pytest.LogCaptureFixture
) -> None:
    km, client = kernel
    assert (await execute(client, SIGNAL_HANDLER_CELL))["status"] == "ok"
    with caplog.at_level(logging.INFO):
        await km.signal_kernel(signal.SIGUSR1)
    assert "KF-GOT SIGUSR1" in await printed(client, "KF-GOT SIGUSR1")
    assert f"Kernel {km.kernel_id}: SIGUSR1 delivered" in [r.getMessage() for r in caplog.records]
    await km.signal_kernel(signal.SIGHUP)
    assert "KF-GOT SIGHUP" in await printed(client, "KF-GOT SIGHUP")
    await km.signal_kernel(0)  # signal 0 still asks nothing
    assert (await execute(client, "6*7"))["result"] == "42"
    assert await km.is_alive()


async def test_a_signal_the_protocol_does_not_carry_is_refused_by_name(
    kernel: tuple[AsyncKernelManager, AsyncKernelClient], caplog: pytest.LogCaptureFixture
) -> None:
    km, client = kernel
    with caplog.at_level(logging.WARNING), pytest.raises(SignalNotDelivered) as refused:
        await km.signal_kernel(signal.SIGSEGV)
    assert str(refused.value) == (
        f"Kernel {km.kernel_id}: SIGSEGV ({int(signal.SIGSEGV)}) was not delivered: the launch protocol carries "
        "SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT, SIGSTOP, SIGTSTP to a kernel by name, and SIGINT, SIGTERM, "
        "SIGKILL as interrupt, terminate and kill; no other signal")
    assert str(refused.value) in [r.getMessage() for r in caplog.records]
    with pytest.raises(SignalNotDelivered, match=f"Kernel {km.kernel_id}: signal 4242 is no signal"):
        await km.signal_kernel(4242)
    # The kernel would have died of SIGSEGV: it did not get it, and SIGINT still is an interrupt.
    assert (await execute(client, "6*7"))["result"] == "42"
    await interrupt_busy_cell(km, client)
    assert await km.is_alive()


async def test_stop_and_cont_pause_the_kernel_but_not_its_launcher(
    kernel: tuple[AsyncKernelManager, AsyncKernelClient]
) -> None:
    """SIGSTOP stops the kernel only: its launcher still answers (ping says alive), and after SIGCONT the kernel
    runs the cell sent while it was stopped. (Whether the kernel was really stopped shows in /proc only once the
    kernel has taken the signal, which no event announces.)"""
    km, client = kernel
    await km.signal_kernel(signal.SIGSTOP)
    assert await km.is_alive()
    msg_id = client.execute("6*7")  # sent (queued in the kernel's socket) while the kernel is stopped
    await km.signal_kernel(signal.SIGCONT)
    async with asyncio.timeout(60):
        while (reply := await client.get_shell_msg())["parent_header"].get("msg_id") != msg_id:
            pass
    assert reply["content"]["status"] == "ok"


@pytest.fixture
def old_launcher(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH for the Python launcher and protocol as released in 0.1.0 (OLD_LAUNCHER_COMMIT): the fixture archive
    is ``git archive`` of that commit's two ``src`` trees, kept in the repository so that a clone without history
    (or a source tarball) runs this test too."""
    archive = OLD_LAUNCHER_ARCHIVE.read_bytes()
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(tmp_path / "old", filter="data")
    paths = [tmp_path / "old" / "packages" / name / "src" for name in ("launcher-python", "protocol")]
    env = {"PYTHONPATH": os.pathsep.join(str(p) for p in paths)}
    check = subprocess.run(
        [sys.executable, "-c", "import kernelfleet.launcher as l; print(l.__version__, l.__file__)"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )
    assert check.stdout.startswith("0.1.0 ") and "/old/" in check.stdout, check.stdout + check.stderr
    return env


async def test_a_launcher_older_than_protocol_2_2_is_named_with_the_version_it_needs(
    kernels_dir: Path, make_kernelspec: Callable[..., str], old_launcher: dict[str, str]
) -> None:
    km = manager(kernels_dir, make_kernelspec(env=old_launcher))
    await km.start_kernel()
    client = await connect(km)
    try:
        with pytest.raises(SignalNotDelivered) as refused:
            await km.signal_kernel(signal.SIGUSR1)
        assert str(refused.value) == (
            f"Kernel {km.kernel_id}: SIGUSR1 was not delivered: the kernel's launcher (python/0.1.0) predates "
            "protocol 2.2, which carries signals other than SIGINT, SIGTERM and SIGKILL; it needs python/0.2.0 or "
            "later: rebuild the kernel's image or reinstall its kernelspec's launcher with this Kernel Fleet")
        assert (await execute(client, "6*7"))["result"] == "42"
    finally:
        client.stop_channels()
        await km.shutdown_kernel(now=True)


async def test_a_stopped_kernel_still_shuts_down(kernels_dir: Path, make_kernelspec: Callable[..., str]) -> None:
    """SIGSTOP cannot take the kernel out of the server's hands: a graceful shutdown of a stopped kernel (which
    answers nothing, and whose SIGTERM waits for a SIGCONT that never comes) ends it through the launcher's kill."""
    km = manager(kernels_dir, make_kernelspec())
    await km.start_kernel()
    try:
        client = await connect(km)
        pid = int((await execute(client, "import os; os.getpid()"))["result"])
        client.stop_channels()
        await km.signal_kernel(signal.SIGSTOP)
    finally:
        await asyncio.wait_for(km.shutdown_kernel(), 90)
    assert not km.has_kernel
    with pytest.raises(ProcessLookupError):  # the stopped kernel did not outlive its shutdown
        os.kill(pid, 0)
