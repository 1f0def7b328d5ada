"""Death on the embedded default (distributed-provisioner, localhost): ``kill -9`` of the kernel or of its
launcher is reported by ``poll()`` as soon as the launcher process exits (the process handle, no polling), and
jupyter_client's own restarter then restarts the kernel, which runs code again.

Also the reattach path: a kernel taken over from another process (``load_provisioner_info``) is shut down with
nothing left running when ``shutdown_kernel()`` returns, and ``poll()`` follows the launcher's pidfd.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from death_testing import detection_time, figure, kill9, restarted_after, restarting_manager
from jupyter_client import AsyncKernelManager
from jupyter_client.provisioning import KernelProvisionerFactory
from kf_testing import connect, execute, manager

ENGINE = "local"
SUPPORT = str(Path(__file__).parents[1] / "support")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def processes_of(kernel_id: str) -> list[int]:
    """Every live process whose environment carries this kernel's id (launcher, kernel, its children)."""
    found = []
    needle = f"KERNEL_ID={kernel_id}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0") and alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture
async def running(kernels_dir: Path, make_kernelspec: Callable[..., str]) -> AsyncIterator[AsyncKernelManager]:
    km = manager(kernels_dir, make_kernelspec())
    await km.start_kernel()
    yield km
    if km.has_kernel:
        await km.shutdown_kernel(now=True)
    assert not processes_of(str(km.kernel_id))


@pytest.mark.parametrize("victim", ["kernel", "launcher"])
async def test_kill9_is_reported_by_poll(running: AsyncKernelManager, victim: str,
                                         request: pytest.FixtureRequest) -> None:
    prov = running.provisioner
    assert await prov.poll() is None
    pid = prov.kernel_pgid if victim == "kernel" else prov.local_process.pid
    elapsed = await detection_time(prov, kill9(pid))
    figure(request, ENGINE, f"kill -9 {victim}", elapsed)
    assert not await running.is_alive()


@pytest.mark.parametrize("victim", ["kernel", "launcher"])
async def test_restarter_restarts_a_killed_kernel(kernels_dir: Path, make_kernelspec: Callable[..., str],
                                                 victim: str, request: pytest.FixtureRequest) -> None:
    km = restarting_manager(kernels_dir, make_kernelspec())
    await km.start_kernel()
    try:
        prov = km.provisioner
        first_launcher = prov.local_process.pid
        pid = prov.kernel_pgid if victim == "kernel" else first_launcher
        elapsed = await restarted_after(km, kill9(pid))
        figure(request, ENGINE, f"kill -9 {victim}", elapsed, metric="restart_s")
        assert km.provisioner.local_process.pid != first_launcher
    finally:
        km.stop_restarter()
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
    assert not processes_of(str(km.kernel_id))


# ----------------------------------------------------------------------------------------- reattach
LEAVE_RUNNING = """
import asyncio, json, os, sys
from pathlib import Path
from kf_testing import manager
from kernelfleet.provisioners.sessions.reattach import json_safe

async def main():
    km = manager(Path(sys.argv[1]), sys.argv[2], kernel_id=sys.argv[3])
    await km.start_kernel()
    info = {"connection": json_safe(km.get_connection_info(session=False)),
            "provisioner": json_safe(await km.provisioner.get_provisioner_info())}
    print(json.dumps(info), flush=True)
    os._exit(0)  # a server that goes away without stopping its kernel

asyncio.run(main())
"""


async def start_elsewhere(kernels_dir: Path, name: str, kernel_id: str) -> dict[str, Any]:
    """Start a kernel in another process that then exits; what it would have saved for a reattach."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (SUPPORT, os.environ.get("PYTHONPATH")) if p)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LEAVE_RUNNING, str(kernels_dir), name, kernel_id, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-3000:]
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def reattached(kernels_dir: Path, name: str, kernel_id: str, saved: dict[str, Any]) -> AsyncKernelManager:
    """What the sessions extension does: a kernel manager whose provisioner loads the saved info."""
    km = manager(kernels_dir, name, kernel_id=kernel_id)
    km.load_connection_info(saved["connection"])
    prov = KernelProvisionerFactory.instance().create_provisioner_instance(kernel_id, km.kernel_spec, parent=km)
    km.provisioner = prov
    await prov.load_provisioner_info(saved["provisioner"])
    km._attempted_start = True
    return km


@pytest.mark.parametrize("now", [False, True], ids=["graceful", "now"])
async def test_reattached_kernel_is_gone_when_shutdown_returns(kernels_dir: Path, make_kernelspec: Callable[..., str],
                                                               now: bool) -> None:
    name = make_kernelspec()
    kernel_id = f"reattach-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}"
    saved = await start_elsewhere(kernels_dir, name, kernel_id)
    try:
        before = processes_of(kernel_id)
        assert before, "the kernel did not outlive the process that started it"
        km = await reattached(kernels_dir, name, kernel_id, saved)
        assert await km.is_alive()
        client = await connect(km)
        try:
            assert (await execute(client, "21 * 2"))["result"] == "42"
        finally:
            client.stop_channels()
        await km.shutdown_kernel(now=now)
        left = [pid for pid in before if alive(pid)]
        assert not left, f"processes {left} still run after shutdown_kernel() returned"
        assert not processes_of(kernel_id)
    finally:
        for pid in processes_of(kernel_id):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("victim", ["kernel", "launcher"])
async def test_reattached_kernel_death_is_reported(kernels_dir: Path, make_kernelspec: Callable[..., str],
                                                   victim: str, request: pytest.FixtureRequest) -> None:
    name = make_kernelspec()
    kernel_id = f"reattach-{victim}-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}"
    saved = await start_elsewhere(kernels_dir, name, kernel_id)
    try:
        km = await reattached(kernels_dir, name, kernel_id, saved)
        prov = km.provisioner
        assert await prov.poll() is None
        pid = prov.kernel_pgid if victim == "kernel" else prov.local_process.pid
        elapsed = await detection_time(prov, kill9(pid))
        figure(request, ENGINE, f"kill -9 {victim} (reattached)", elapsed)
        await km.shutdown_kernel(now=True)
        assert not processes_of(kernel_id)
    finally:
        for pid in processes_of(kernel_id):
            os.kill(pid, signal.SIGKILL)
