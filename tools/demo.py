"""Kernel Fleet's main job, end to end on the embedded default (no cluster needed).

Installs the ``distributed-provisioner`` kernelspec with ``jupyter ssh-spec install`` (remote_hosts
defaults to localhost, so the launcher runs as a local process), then does what a notebook does:
start, execute, interrupt a busy cell, restart, shut down — printing each step and how long it took.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from jupyter_client import AsyncKernelManager

KERNEL_NAME = "kernelfleet_local"
BIN = Path(sys.executable).parent


def step(started: float, what: str) -> None:
    print(f"[{time.perf_counter() - started:7.3f}s] {what}", flush=True)


async def execute(client, code: str, timeout: float = 30) -> dict:
    msg_id = client.execute(code)
    async with asyncio.timeout(timeout):
        while (reply := await client.get_shell_msg())["parent_header"].get("msg_id") != msg_id:
            pass
    result = None
    while True:
        msg = await client.get_iopub_msg()
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "execute_result":
            result = msg["content"]["data"]["text/plain"]
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return {**reply["content"], "result": result}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


async def main() -> None:
    t0 = time.perf_counter()
    cmd = [str(BIN / "jupyter-ssh-spec"), "install", "--sys-prefix", "--replace", "--kernel-name", KERNEL_NAME,
           "--display-name", "Python (Kernel Fleet, this machine)"]
    installer = await asyncio.create_subprocess_exec(*cmd)
    if await installer.wait():
        raise SystemExit(f"{' '.join(cmd)} failed")
    step(t0, f"kernelspec {KERNEL_NAME!r} installed: {' '.join(['jupyter ssh-spec', *cmd[1:]])}")

    km = AsyncKernelManager(kernel_name=KERNEL_NAME)
    t = time.perf_counter()
    await km.start_kernel()
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    step(t0, f"kernel {km.kernel_id} started via {km.provisioner.__class__.__name__} "
             f"and ready in {time.perf_counter() - t:.3f}s")

    t = time.perf_counter()
    reply = await execute(client, "import os, sys\nf'{sum(range(10**6))} from pid {os.getpid()}'")
    step(t0, f"executed: {reply['result']} ({time.perf_counter() - t:.3f}s)")
    kernel_pid = int(reply["result"].rsplit(" ", 1)[1].strip("'"))

    busy = client.execute("while True:\n    pass")
    await asyncio.sleep(0.5)
    t = time.perf_counter()
    await km.interrupt_kernel()
    async with asyncio.timeout(10):
        while (msg := await client.get_shell_msg())["parent_header"].get("msg_id") != busy:
            pass
    step(t0, f"interrupted a busy cell: {msg['content']['ename']} after {time.perf_counter() - t:.3f}s")

    t = time.perf_counter()
    await km.restart_kernel()
    client.stop_channels()  # the new kernel may listen on new ports: reconnect, as jupyter_server does
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    reply = await execute(client, "import os; os.getpid()")
    step(t0, f"restarted: new kernel pid {reply['result']} (old {kernel_pid} alive: {alive(kernel_pid)}) "
             f"in {time.perf_counter() - t:.3f}s")
    kernel_pid = int(reply["result"])
    launcher_pid = km.provisioner.local_process.pid

    client.stop_channels()
    t = time.perf_counter()
    await km.shutdown_kernel()
    while alive(kernel_pid) or alive(launcher_pid):
        if time.perf_counter() - t > 10:
            raise SystemExit(f"kernel {kernel_pid} or launcher {launcher_pid} still running after shutdown")
        await asyncio.sleep(0.005)
    step(t0, f"shut down: kernel and launcher processes gone {time.perf_counter() - t:.3f}s after the request")


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
