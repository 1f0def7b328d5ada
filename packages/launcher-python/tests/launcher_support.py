"""Helpers for the launcher tests: finding the kernel's processes, and one launch as the tests see it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient

from kernelfleet.protocol import Report
from kernelfleet.protocol.comm_client import send_request
from kernelfleet.provisioners.broker import PendingLaunch

TESTS_DIR = Path(__file__).parent
# The interpreter that runs the launcher (and so its kernel). Point it at another environment, e.g. one
# with ipykernel 6, to run this whole suite against that: KF_LAUNCHER_PYTHON=/path/to/python pytest ...
LAUNCHER_PYTHON = os.environ.get("KF_LAUNCHER_PYTHON") or sys.executable


def _processes(kernel_id: str, module: bytes) -> list[int]:
    """Live (non-zombie) processes running ``python -m module`` with this KERNEL_ID in their environment.

    The kernel process is spawned before the launcher has read its inputs, so its command line does
    not name the kernel; its environment, inherited from the launcher, does.
    """
    marker = f"KERNEL_ID={kernel_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if module not in argv:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ and process_running(int(entry.name)):
            found.append(int(entry.name))
    return found


def kernel_processes(kernel_id: str) -> list[int]:
    return _processes(kernel_id, b"kernelfleet.launcher.kernel")


def launcher_processes(kernel_id: str) -> list[int]:
    return _processes(kernel_id, b"kernelfleet.launcher")


def process_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a zombie has exited; it only waits to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` is gone (a foreign process: no event to wait on, so look every 20 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while process_running(pid):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@dataclass
class Launch:
    """One launcher subprocess and what the broker learned from it."""

    kernel_id: str
    proc: asyncio.subprocess.Process
    pending: PendingLaunch
    stderr_path: Path
    tmpdir: Path  # the launcher's TMPDIR: where its connection file goes
    env: dict[str, str]
    report: Report | None = None
    clients: list[AsyncKernelClient] = field(default_factory=list)

    @property
    def kernel_pid(self) -> int:
        assert self.report is not None and self.report.pgid is not None
        return self.report.pgid  # the kernel leads its own process group

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    async def comm(self, op: str, **params: Any) -> dict[str, Any]:
        assert self.report is not None and self.report.comm_key is not None
        return await send_request("127.0.0.1", self.report.comm_port, self.report.comm_key, op, **params)

    async def client(self, timeout: float = 30.0) -> AsyncKernelClient:
        """A connected client whose kernel has answered kernel_info (no heartbeat: the kernel may still be booting)."""
        assert self.report is not None
        kc = AsyncKernelClient()
        kc.load_connection_info(self.report.connection_info)
        kc.start_channels(hb=False)
        self.clients.append(kc)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            kc.kernel_info()
            try:
                reply = await kc.get_shell_msg(timeout=0.5)
            except Exception:
                assert loop.time() < deadline, f"kernel {self.kernel_id} never answered kernel_info\n{self.stderr}"
                continue
            if reply["msg_type"] == "kernel_info_reply":  # any of them: earlier requests are answered first
                kc.kernel_info_reply = reply
                while True:  # drop the other answers, so later get_shell_msg calls see only their own replies
                    try:
                        await kc.get_shell_msg(timeout=0.2)
                    except Exception:
                        return kc

    async def wait_exit(self, timeout: float) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)


Launcher = Callable[..., Awaitable[Launch]]
