"""One response broker under measurement, in its own process: ours (``kf``) or Gateway Provisioners' (``gp``).

Run by compare_brokers.py inside the implementation's own venv. It prints one JSON line to stdout
describing where to report, then one JSON line of results. Mode ``serve`` (ours only; used by
broker_hostile.py and packages/provisioners/tests/test_broker_hostile.py) instead answers JSON commands
on stdin, one line each, until stdin closes: ``{"expect": ID}`` gives the launch token,
``{"wait": ID, "timeout": S}`` whether the report arrived, ``{"stats": 1}`` RSS, open descriptors
and the broker's counters, ``{"open_file": 1}`` whether the process can still open a file.
``--nofile SOFT[:HARD]`` sets the process's descriptor limits first. Each implementation is awaited the way
its provisioner awaits it: ours as a future, GP's with its provisioner's poll loop (sleep
``poll_interval``, then ``get_connection_info`` with its 5 ms timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def kf_broker(kernel_ids: list[str]):
    from kernelfleet.provisioners.broker import ResponseBroker

    broker = ResponseBroker(bind_ip="127.0.0.1", advertised_ip="127.0.0.1", port=0, read_timeout=30)
    await broker.start()
    pending = {k: broker.expect(k) for k in kernel_ids}

    async def wait_one(kernel_id: str) -> float:
        await pending[kernel_id].wait()
        return time.time()

    info = {"address": broker.response_address, "public_key": broker.public_key,
            "tokens": {k: p.token for k, p in pending.items()}}
    return info, wait_one


async def gp_broker(kernel_ids: list[str]):
    from gateway_provisioners.config_mixin import poll_interval
    from gateway_provisioners.response_manager import ResponseManager

    rm = ResponseManager.instance()
    for k in kernel_ids:
        rm.register_event(k)

    async def wait_one(kernel_id: str) -> float:
        while True:  # what RemoteProvisionerBase.confirm_remote_startup does
            try:
                await rm.get_connection_info(kernel_id)
                return time.time()
            except TimeoutError:
                await asyncio.sleep(poll_interval)

    return {"address": rm.response_address, "public_key": rm.public_key, "tokens": {}}, wait_one


def process_stats() -> dict:
    """Resident memory (kB) and open descriptors of this process, from /proc; -1 descriptors when the process
    has none left to read /proc with (then the RSS is the peak, which needs no descriptor)."""
    try:
        status = Path("/proc/self/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return {"rss_kb": rss, "fds": len(os.listdir("/proc/self/fd"))}
    except OSError:
        return {"rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "fds": -1}


async def serve(args: argparse.Namespace) -> None:
    from kernelfleet.provisioners.broker import ResponseBroker

    broker = ResponseBroker(bind_ip="127.0.0.1", advertised_ip="127.0.0.1", port=0, read_timeout=args.read_timeout,
                            accept_v1_reports=args.accept_v1)
    await broker.start()
    emit({"address": broker.response_address, "public_key": broker.public_key, "pid": os.getpid()})
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    pending = {}

    async def wait(kernel_id: str, timeout: float) -> None:
        try:
            await pending[kernel_id].wait(timeout)
            emit({"wait": kernel_id, "ok": True})
        except Exception as err:  # the answer names whatever went wrong
            emit({"wait": kernel_id, "ok": False, "error": f"{type(err).__name__}: {err}"})

    waiting = set()
    while line := await commands.readline():
        command = json.loads(line)
        if "expect" in command:
            pending[command["expect"]] = broker.expect(command["expect"])
            emit({"token": pending[command["expect"]].token})
        elif "wait" in command:  # answered when it is over, so several can run at once
            task = asyncio.ensure_future(wait(command["wait"], command.get("timeout", 30)))
            waiting.add(task)
            task.add_done_callback(waiting.discard)
        elif "stats" in command:
            emit({**process_stats(), "counters": dict(getattr(broker, "counters", {}))})
        elif "open_file" in command:
            try:
                os.close(os.open(os.devnull, os.O_RDONLY))  # a descriptor is what runs out, not the disk
                emit({"open_file": True})
            except OSError as err:
                emit({"open_file": False, "error": str(err)})
    await broker.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("impl", choices=["kf", "gp"])
    parser.add_argument("mode", choices=["reports", "idle", "stall", "serve"])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--read-timeout", type=float, default=5.0)
    parser.add_argument("--accept-v1", action="store_true")
    parser.add_argument("--nofile", help="SOFT[:HARD] descriptor limits for this process")
    args = parser.parse_args()
    if args.nofile:
        soft, _, hard = args.nofile.partition(":")
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(soft), int(hard or resource.getrlimit(
            resource.RLIMIT_NOFILE)[1])))
    if args.mode == "serve":
        await serve(args)
        return
    kernel_ids = [f"bench-{i:04d}-{os.getpid()}" for i in range(args.count if args.mode != "idle" else 0)]
    info, wait_one = await (kf_broker if args.impl == "kf" else gp_broker)(kernel_ids)
    emit(info)

    if args.mode == "idle":
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(args.seconds)
        cpu = time.process_time() - cpu0
        emit({"idle_cpu_percent": 100 * cpu / (time.perf_counter() - wall0)})
        return

    # reports and stall: wait (bounded) for every kernel's report; the client says when it began
    tasks = {k: asyncio.ensure_future(wait_one(k)) for k in kernel_ids}
    done, _ = await asyncio.wait(tasks.values(), timeout=args.seconds)
    received = {k: t.result() for k, t in tasks.items() if t in done}
    emit({"received": len(received), "expected": len(kernel_ids), "times": received})


if __name__ == "__main__":
    try:  # the benchmarks run on uvloop when it is installed (Kernel Fleet supports it; GP's venv lacks it)
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
