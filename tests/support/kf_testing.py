"""Small helpers for driving a kernel the way a notebook does, over jupyter_client (shared by every suite)."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Any

from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager


async def execute(client: AsyncKernelClient, code: str, timeout: float = 30) -> dict[str, Any]:
    """Run ``code``; return the reply content plus the text/plain result and stdout it produced."""
    msg_id = client.execute(code)
    result: dict[str, Any] = {"stdout": "", "result": None}
    async with asyncio.timeout(timeout):
        while True:
            msg = await client.get_iopub_msg()
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                result["stdout"] += content["text"]
            elif kind == "execute_result":
                result["result"] = content["data"].get("text/plain")
            elif kind == "status" and content["execution_state"] == "idle":
                break
        while True:
            reply = await client.get_shell_msg()
            if reply["parent_header"].get("msg_id") == msg_id:
                return {**reply["content"], **result}


def manager(kernels_dir: Path, name: str, kernel_id: str | None = None) -> AsyncKernelManager:
    return AsyncKernelManager(
        kernel_name=name,
        kernel_id=kernel_id or str(uuid.uuid4()),
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]),
    )


async def connect(km: AsyncKernelManager) -> AsyncKernelClient:
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=30)
    return client


STARTED = "KF-CELL-STARTED"
BUSY_CELL = f"import time\nprint({STARTED!r})\nwhile True: time.sleep(0.01)"


async def start_busy_cell(client: AsyncKernelClient, code: str = BUSY_CELL, marker: str = STARTED,
                          timeout: float = 30) -> str:
    """Execute ``code`` and return its msg_id once its output shows ``marker``: the cell is running its own code.

    A SIGINT that arrives before the cell started (between execute_input and the first line) lands in the kernel's
    machinery instead of the cell, so interrupts are sent only after the cell said it runs. The marker is printed
    without ``flush=True``: ipykernel's flush waits for its IOPub thread to send, so the output can reach us while
    the cell still waits in that flush, and a SIGINT there breaks ipykernel's stream lock. Unflushed, the output
    leaves 0.2 s (ipykernel's flush interval) after print returned: the cell runs its own loop by then.
    """
    msg_id = client.execute(code)
    async with asyncio.timeout(timeout):
        seen = ""
        while marker not in seen:
            msg = await client.get_iopub_msg()
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                seen += msg["content"]["text"]
            elif msg["msg_type"] == "error" or (msg["msg_type"] == "status"
                                                 and msg["content"]["execution_state"] == "idle"):
                raise AssertionError(f"the cell ended before printing {marker!r}: {msg['content']}")
    return msg_id


async def interrupted_reply(client: AsyncKernelClient, msg_id: str, timeout: float = 30) -> dict[str, Any]:
    """The execute_reply of ``msg_id``, which an interrupt must have ended with KeyboardInterrupt."""
    async with asyncio.timeout(timeout):
        while (msg := await client.get_shell_msg())["parent_header"].get("msg_id") != msg_id:
            pass
    content: dict[str, Any] = msg["content"]
    assert content["status"] == "error" and content["ename"] == "KeyboardInterrupt", content
    return content


async def interrupt_busy_cell(km: AsyncKernelManager, client: AsyncKernelClient) -> None:
    busy = await start_busy_cell(client)
    await km.interrupt_kernel()
    await interrupted_reply(client, busy)


# A cell that makes SIGUSR1 and SIGHUP print "KF-GOT <name>" from the kernel's own handler (tests of the signal op).
SIGNAL_HANDLER_CELL = """
import signal
def _kf_on_signal(signum, frame):
    print("KF-GOT", signal.Signals(signum).name, flush=True)
for _kf_sig in (signal.SIGUSR1, signal.SIGHUP):
    signal.signal(_kf_sig, _kf_on_signal)
"""


async def printed(client: AsyncKernelClient, marker: str, timeout: float = 30) -> str:
    """Wait for a stdout stream message holding ``marker``, whatever request it is parented to (a signal handler
    prints between cells, under the last cell's header); return its text."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await client.get_iopub_msg()
            if msg["msg_type"] == "stream" and marker in msg["content"]["text"]:
                return str(msg["content"]["text"])


async def check_signals(km: AsyncKernelManager, client: AsyncKernelClient, allowed: int, refused: int) -> None:
    """Protocol 2.2's signal op on any engine: ``allowed`` (SIGUSR1 or SIGHUP) reaches the handler a cell installs and
    its output arrives on iopub; ``refused`` (outside the list) raises SignalNotDelivered naming the kernel; the
    kernel still runs cells."""
    from kernelfleet.provisioners.kernel_signals import SignalNotDelivered

    assert (await execute(client, SIGNAL_HANDLER_CELL))["status"] == "ok"
    await km.signal_kernel(allowed)
    marker = f"KF-GOT {signal.Signals(allowed).name}"
    assert marker in await printed(client, marker)
    try:
        await km.signal_kernel(refused)
    except SignalNotDelivered as err:
        assert str(err).startswith(f"Kernel {km.kernel_id}: {signal.Signals(refused).name} "), err
        assert "was not delivered" in str(err), err
    else:
        raise AssertionError(f"{signal.Signals(refused).name} was not refused")
    assert (await execute(client, "6*7"))["result"] == "42"
async def process_exited(pid: int, within: float = 60.0) -> None:
    """Wait for ``pid`` to exit, on its pidfd (no polling); TimeoutError after ``within`` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(None))
    try:
        await asyncio.wait_for(done, within)
    finally:
        loop.remove_reader(fd)
        os.close(fd)
