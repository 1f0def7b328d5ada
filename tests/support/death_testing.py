"""What every engine's death tests share: measure how soon ``poll()`` reports a fault, and drive
jupyter_client's own restarter through a real ``AsyncIOLoopKernelManager`` with autorestart.

A detection is measured from the moment the fault was dealt to the moment the provisioner's ``wait()``
(woken by the engine: a process exit, a Docker event, a pod watch event) returned and ``poll()`` agreed.
Tests assert generous deadlines; the 1 s target is checked by ``tools/bench/death_detection.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jupyter_client.ioloop import AsyncIOLoopKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.provisioning import KernelProvisionerFactory
from kf_testing import execute
from reliability_figures import record_figure
from traitlets.config import Config

DEADLINE = 10.0  # a test's limit for noticing a death; the benchmark holds the 1 s target


async def detection_time(provisioner: Any, fault: Callable[[], Awaitable[Any]], within: float = DEADLINE) -> float:
    """Deal ``fault``; seconds until the provisioner's ``wait()`` (already waiting, as a server's would be)
    returned and ``poll()`` said exited."""
    waiter = asyncio.ensure_future(provisioner.wait())
    await asyncio.sleep(0)  # the waiter is under way before the fault, not started by it
    started = time.perf_counter()
    try:
        await fault()
        done, _ = await asyncio.wait({waiter}, timeout=within)
    finally:
        waiter.cancel()
    if not done:
        raise AssertionError(f"the kernel was not reported dead within {within}s of the fault")
    waiter.result()
    elapsed = time.perf_counter() - started
    code = await provisioner.poll()
    assert code is not None, "wait() returned but poll() still says the kernel runs"
    return elapsed


async def reloaded(km: Any) -> Any:
    """A second provisioner for ``km``'s kernel that knows only its saved info, as a restarted server's would be
    (``load_provisioner_info``); the caller lets go of it with ``detach()``."""
    saved = await km.provisioner.get_provisioner_info()
    fresh = KernelProvisionerFactory.instance().create_provisioner_instance(str(km.kernel_id), km.kernel_spec,
                                                                          parent=km)
    await fresh.load_provisioner_info(saved)
    return fresh


def figure(request: Any, engine: str, fault: str, value: float, metric: str = "detect_s") -> None:
    record_figure(request.node.nodeid, engine, fault, metric, value)


class ObservedKernelManager(AsyncIOLoopKernelManager):  # type: ignore[misc]
    """jupyter_client's asyncio kernel manager, telling the test when a restart (the restarter's) has finished."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.restarts: asyncio.Queue[float] = asyncio.Queue()

    async def restart_kernel(self, now: bool = False, newports: bool = False, **kw: Any) -> None:
        await super().restart_kernel(now=now, newports=newports, **kw)
        self.restarts.put_nowait(time.perf_counter())


def restarting_manager(kernels_dir: Path, name: str) -> ObservedKernelManager:
    """A manager whose restarter checks every second (jupyter_server's default is 3 s)."""
    config = Config({"KernelRestarter": {"time_to_dead": 1.0, "restart_limit": 3}})
    return ObservedKernelManager(kernel_name=name, config=config, autorestart=True,
                                 kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]))


async def restarted_after(km: ObservedKernelManager, fault: Callable[[], Awaitable[Any]],
                          within: float = 120.0) -> float:
    """Deal ``fault`` to a running kernel with the restarter on; once jupyter_client restarted it, the new kernel
    must run code. Returns seconds from the fault to the restarted kernel's first result."""
    died: list[str] = []
    km.add_restart_callback(lambda: died.append("dead"), "dead")
    km.start_restarter()
    started = time.perf_counter()
    await fault()
    try:
        await asyncio.wait_for(km.restarts.get(), within)
    except TimeoutError:
        raise AssertionError(f"jupyter_client did not restart the kernel within {within}s (dead: {died})") from None
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        reply = await execute(client, "import os\n6 * 7", timeout=30)
        assert reply["status"] == "ok" and reply["result"] == "42", reply
    finally:
        client.stop_channels()
    return time.perf_counter() - started


def kill9(pid: int) -> Callable[[], Awaitable[None]]:
    async def fault() -> None:
        os.kill(pid, 9)
    return fault


ALLOCATE = "block = b'x' * (1024 ** 3)"  # far beyond the tests' memory limits


async def oom_detection(km: Any, caplog: Any, limit_text: str) -> float:
    """Run a cell that allocates past the kernel's memory limit; seconds until the OOM kill was reported, after
    checking that the provisioner named the reason and ``limit_text`` and logged it once, as a warning."""
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)

    async def allocate() -> None:
        client.execute(ALLOCATE)

    try:
        elapsed = await detection_time(km.provisioner, allocate)
    finally:
        client.stop_channels()
    reason = km.provisioner.end_reason or ""
    assert "OOMKilled" in reason and limit_text in reason and "137" in reason, reason
    assert await km.provisioner.poll() == 137
    lines = [r for r in caplog.records if "OOMKilled" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING, [r.getMessage() for r in lines]
    assert str(km.kernel_id) in lines[0].getMessage()
    return elapsed


async def pid_in_container(km: Any, victim: str) -> int:
    """The pid the container's own namespace gives the kernel (asked of the kernel) or its launcher (reported)."""
    if victim == "launcher":
        return int(km.provisioner.remote_pid)
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        return int((await execute(client, "import os\nos.getpid()"))["result"])
    finally:
        client.stop_channels()


def innermost_pid(pid: str) -> int | None:
    """The pid a process has in its innermost pid namespace (``NSpid``); None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    return int(next(row.split()[-1] for row in status.splitlines() if row.startswith("NSpid:")))


def host_pid(top_pids: list[str], pid_in_container: int) -> int:
    """Among a container's processes (host pids, as ``docker top -eo pid`` lists them), the one its own pid
    namespace calls ``pid_in_container``."""
    for pid in top_pids:
        if innermost_pid(pid) == pid_in_container:
            return int(pid)
    raise AssertionError(f"no process {pid_in_container} among the container's processes {top_pids}")
