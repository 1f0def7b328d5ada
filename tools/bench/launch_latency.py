"""Start-to-first-execute and shutdown linger for one kernelspec, measured inside the venv that owns it.

Prints one JSON line: per-run start-to-first-execute seconds, and how long after the shutdown request
the launcher, the kernel and all their descendants were gone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager


def children(pid: int) -> set[int]:
    found, frontier = set(), {pid}
    while frontier:
        parents, frontier = frontier, set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            child = int(stat.parent.name)
            if int(fields[1]) in parents and child not in found:
                found.add(child)
                frontier.add(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def launcher_pid(km: AsyncKernelManager) -> int | None:
    prov = km.provisioner
    for attr in ("local_process", "local_proc", "process"):
        proc = getattr(prov, attr, None)
        if proc is not None and getattr(proc, "pid", None):
            return proc.pid
    return None


async def first_execute(client) -> None:
    msg_id = client.execute("1 + 1")
    while (await client.get_shell_msg(timeout=60))["parent_header"].get("msg_id") != msg_id:
        pass


async def one_run(ksm: KernelSpecManager, name: str) -> tuple[float, float]:
    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=ksm)
    started = time.perf_counter()
    await km.start_kernel()
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    await first_execute(client)
    ready = time.perf_counter() - started
    msg_id = client.execute("import os; os.getpid()")
    kernel_pid = None
    while kernel_pid is None:
        msg = await client.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_result":
            kernel_pid = int(msg["content"]["data"]["text/plain"])
    root = launcher_pid(km) or kernel_pid
    pids = {root, kernel_pid} | children(root) | children(kernel_pid)
    pids.discard(os.getpid())
    client.stop_channels()
    asked = time.perf_counter()
    await km.shutdown_kernel()
    while any(alive(p) for p in pids):
        if time.perf_counter() - asked > 60:
            break
        await asyncio.sleep(0.005)
    return ready, time.perf_counter() - asked


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernel-name", required=True)
    parser.add_argument("--kernel-dir", required=True)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    ksm = KernelSpecManager(kernel_dirs=[args.kernel_dir])
    await one_run(ksm, args.kernel_name)  # warm-up: imports, .pyc files, the broker's key pair
    results = [await one_run(ksm, args.kernel_name) for _ in range(args.runs)]
    print(json.dumps({"ready": [r[0] for r in results], "linger": [r[1] for r in results]}))


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
