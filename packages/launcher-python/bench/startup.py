"""Start-to-first-execute: the launcher (with a real ResponseBroker) against a bare ``python -m ipykernel_launcher``.

Runs the two alternately so machine load hits both alike and prints the medians and their difference.
Usage: ``python packages/launcher-python/bench/startup.py [ROUNDS]``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import write_connection_file

from kernelfleet.provisioners.broker import ResponseBroker


async def _first_execute(info: dict[str, Any], started: float) -> float:
    kc = AsyncKernelClient()
    kc.load_connection_info(info)
    kc.start_channels(hb=False)
    try:
        while True:
            kc.kernel_info()
            try:
                msg = await kc.get_shell_msg(timeout=0.5)
            except Exception:
                continue
            if msg["msg_type"] == "kernel_info_reply":
                break
        reply = await kc.execute_interactive("1 + 1", timeout=30, output_hook=lambda m: None)
        assert reply["content"]["status"] == "ok"
        elapsed = time.perf_counter() - started
        kc.shutdown()
        return elapsed
    finally:
        kc.stop_channels()


async def bare() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.json")
        started = time.perf_counter()
        _, info = write_connection_file(path, ip="127.0.0.1")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ipykernel_launcher", "-f", path, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        elapsed = await _first_execute(info, started)
        await proc.wait()
        return elapsed


async def launcher(broker: ResponseBroker, n: int) -> float:
    kernel_id = f"bench-{n}"
    pending = broker.expect(kernel_id)
    env = dict(
        os.environ,
        KERNEL_ID=kernel_id,
        RESPONSE_ADDRESS=broker.response_address,
        PUBLIC_KEY=broker.public_key,
        LAUNCH_TOKEN=pending.token,
        KERNEL_IP="127.0.0.1",
        LOG_LEVEL="WARNING",
    )
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kernelfleet.launcher", env=env, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    report = await pending.wait(timeout=30)
    elapsed = await _first_execute(report.connection_info, started)
    await proc.wait()
    return elapsed


async def main(rounds: int) -> None:
    broker = ResponseBroker(bind_ip="127.0.0.1", advertised_ip="127.0.0.1", port=0)
    await broker.start()
    try:
        await bare()  # warm the disk cache for both
        bares, ours = [], []
        for n in range(rounds):
            bares.append(await bare())
            ours.append(await launcher(broker, n))
            print(f"round {n}: bare {bares[-1]:.3f} launcher {ours[-1]:.3f}", flush=True)
    finally:
        await broker.stop()
    b, o = statistics.median(bares), statistics.median(ours)
    print(f"bare ipykernel_launcher: median {b:.3f} s  {[round(x, 3) for x in bares]}")
    print(f"kernelfleet.launcher:    median {o:.3f} s  {[round(x, 3) for x in ours]}")
    print(f"launcher overhead:       {o - b:+.3f} s")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 7))
