"""A kernel's comm port held by 1,000 connections: are interrupts and poll() still right, and how fast?

Two modes:

* ``attack HOST PORT --connections N [--trickle S]``: the attacker. It keeps N connections to the comm
  port open, opening a new one whenever the launcher drops one (an attacker who "holds" the port does
  exactly that); idle (it says nothing) or slow-loris (one byte every S seconds, never a newline). It
  prints ``ready N`` once N connections have been opened, and a JSON summary when stdin closes or it
  gets SIGTERM. tests/launchers/test_comm_flood.py runs it as a separate process, as this benchmark does.
* the benchmark (no arguments): a Python kernel on an SSH host (a real sshd on 127.0.0.2 from
  tests/ssh/sshd.py) driven by jupyter_client's AsyncKernelManager, as a notebook server drives it.
  Rounds of (busy cell, interrupt, cell ends) and provisioner poll() calls, first with no attack, then
  with 1,000 held connections; it prints counts and latencies side by side.

Usage: .venv/bin/python tools/bench/comm_flood.py [--rounds 20] [--connections 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
HOST = "127.0.0.2"
READY_LINE = "ready"


# ------------------------------------------------------------------------------------------ the attacker


@dataclass
class AttackStats:
    connections: int = 0  # opened, in all
    dropped: int = 0  # closed or reset by the launcher
    refused: int = 0  # connect failed


async def _hold_one(host: str, port: int, trickle: float | None, source: str | None, stats: AttackStats,
                    opened: asyncio.Event, ready: list[int]) -> None:
    first = True
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0) if source else None)
        except OSError:
            stats.refused += 1
            await asyncio.sleep(0.05)
            continue
        stats.connections += 1
        if first:
            first = False
            ready[0] -= 1
            if ready[0] == 0:
                opened.set()
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that arrives as
                    # the read completes, and the attacker then never stopped (its workers ran on after stop()).
                    async with asyncio.timeout(trickle):
                        data = await reader.read(4096)
                except TimeoutError:
                    writer.write(b"x")  # one byte, never a newline: the request line never completes
                    await writer.drain()
                    continue
                if not data:
                    break
        except OSError:
            pass
        stats.dropped += 1
        writer.close()


async def attack(host: str, port: int, connections: int, trickle: float | None, source: str | None) -> AttackStats:
    """Hold ``connections`` connections until stdin closes or SIGTERM; returns what happened."""
    stats = AttackStats()
    opened = asyncio.Event()
    ready = [connections]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 1024) else None)
    workers = [asyncio.ensure_future(_hold_one(host, port, trickle, source, stats, opened, ready))
               for _ in range(connections)]
    waiter = asyncio.ensure_future(opened.wait())
    await asyncio.wait({waiter, asyncio.ensure_future(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if opened.is_set():
        print(f"{READY_LINE} {connections}", flush=True)
    await stop.wait()
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return stats


def raise_descriptor_limit() -> None:
    """1,000 connections need more than the common soft limit of 1,024 descriptors (with the rest of a process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Attacker:
    """The attacker as a separate process (as a real one is): started, ready, stopped with its summary."""

    def __init__(self, host: str, port: int, connections: int, trickle: float | None = None,
                 source: str | None = None) -> None:
        self.args = [sys.executable, str(HERE), "attack", host, str(port), "--connections", str(connections)]
        if trickle:
            self.args += ["--trickle", str(trickle)]
        if source:
            self.args += ["--source", source]
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Attacker:
        self.process = await asyncio.create_subprocess_exec(
            *self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 120)
        if not line.startswith(READY_LINE.encode()):
            raise RuntimeError(f"the attacker did not open its connections ({line!r}, exit {self.process.returncode})")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stats = await self.stop()

    async def stop(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.close()
        try:
            out, _ = await asyncio.wait_for(self.process.communicate(), 60)
        except TimeoutError:
            self.process.kill()  # never leave an attacker running after the test
            await self.process.wait()
            raise
        lines = out.decode().strip().splitlines()
        return json.loads(lines[-1]) if lines else {}


# ------------------------------------------------------------------------------------------ the benchmark


@dataclass
class Round:
    interrupts_delivered: int = 0
    interrupts: int = 0
    polls_alive: int = 0
    polls: int = 0
    restarts: int = 0


async def interrupt_busy_cell(km: Any, client: Any, timeout: float = 60.0) -> float:
    """Run a cell that prints a marker and sleeps; once the marker arrived, interrupt; seconds until its reply."""
    msg_id = client.execute("print('busy', flush=True)\nimport time\ntime.sleep(600)")
    async with asyncio.timeout(timeout):
        while True:
            msg = await client.get_iopub_msg()
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                break
        started = time.perf_counter()
        await km.interrupt_kernel()
        while (reply := await client.get_shell_msg())["parent_header"].get("msg_id") != msg_id:
            pass
    if reply["content"].get("ename") != "KeyboardInterrupt":
        raise AssertionError(f"the cell ended without an interrupt: {reply['content']}")
    return time.perf_counter() - started


async def measure(km: Any, client: Any, rounds: int, restarts: list[int]) -> tuple[Round, list[float], list[float]]:
    result = Round()
    interrupt_times: list[float] = []
    poll_times: list[float] = []
    before = len(restarts)
    for _ in range(rounds):
        result.interrupts += 1
        try:
            interrupt_times.append(await interrupt_busy_cell(km, client, timeout=30))
            result.interrupts_delivered += 1
        except (TimeoutError, AssertionError):
            client.execute("pass")  # nothing to do: the next round's cell queues behind the stuck one
        started = time.perf_counter()
        code = await km.provisioner.poll()
        poll_times.append(time.perf_counter() - started)
        result.polls += 1
        result.polls_alive += code is None
    result.restarts = len(restarts) - before
    return result, interrupt_times, poll_times


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def benchmark(rounds: int, connections: int) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "ssh"))
    from jupyter_client.ioloop import AsyncIOLoopKernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from sshd import start_cluster

    from kernelfleet.provisioners.leases import close_all

    os.environ.update(KF_RESPONSE_IP="127.0.0.1", KF_RESPONSE_PORT="0", KERNEL_USERNAME="bench")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cluster = start_cluster(root / "sshd", (HOST,))
        kernels = root / "kernels"
        (kernels / "kf_ssh").mkdir(parents=True)
        argv = [sys.executable, "-m", "kernelfleet.launcher", "--kernel-id", "{kernel_id}", "--port-range",
                "{port_range}", "--response-address", "{response_address}", "--public-key", "{public_key}"]
        (kernels / "kf_ssh" / "kernel.json").write_text(json.dumps({
            "argv": argv, "display_name": "kf_ssh", "language": "python", "env": {"KERNEL_IP": HOST},
            "metadata": {"kernel_provisioner": {"provisioner_name": "distributed-provisioner",
                                                "config": {**cluster.provisioner_config(), "remote_hosts": [HOST]}}},
        }))
        km = AsyncIOLoopKernelManager(kernel_name="kf_ssh",
                                      kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
        restarts: list[int] = []
        try:
            await km.start_kernel()
            km.add_restart_callback(lambda: restarts.append(1), "restart")
            km.start_restarter()
            client = km.client()
            client.start_channels()
            await client.wait_for_ready(timeout=60)
            prov = km.provisioner
            quiet = await measure(km, client, rounds, restarts)
            async with Attacker(prov.comm_host, prov.comm_port, connections) as attacker:
                attacked = await measure(km, client, rounds, restarts)
            client.stop_channels()
            await km.shutdown_kernel()
        finally:
            if km.has_kernel:
                await km.shutdown_kernel(now=True)
            await close_all()
            cluster.stop()
    print(f"Python kernel on an SSH host ({HOST}), {rounds} rounds each; attacker: {connections} connections "
          f"held (reopened whenever dropped: {attacker.stats})")
    rows = [("", "no attack", f"{connections} connections held")]
    for name, pick in (
        ("interrupts delivered", lambda r: f"{r[0].interrupts_delivered}/{r[0].interrupts}"),
        ("poll() alive", lambda r: f"{r[0].polls_alive}/{r[0].polls}"),
        ("restarts by the restarter", lambda r: str(r[0].restarts)),
        ("interrupt to reply p50", lambda r: f"{percentile(r[1], 0.5) * 1000:.1f} ms"),
        ("interrupt to reply p95", lambda r: f"{percentile(r[1], 0.95) * 1000:.1f} ms"),
        ("interrupt to reply max", lambda r: f"{max(r[1], default=float('nan')) * 1000:.1f} ms"),
        ("poll() p50", lambda r: f"{percentile(r[2], 0.5) * 1000:.1f} ms"),
        ("poll() max", lambda r: f"{max(r[2], default=float('nan')) * 1000:.1f} ms"),
    ):
        rows.append((name, pick(quiet), pick(attacked)))
    sys.path.insert(0, str(HERE.parent))
    from common import table

    table(rows)
    ok = (attacked[0].interrupts_delivered == attacked[0].interrupts and attacked[0].polls_alive == attacked[0].polls
          and attacked[0].restarts == 0)
    print("result:", "100% correct under attack" if ok else "NOT correct under attack")
    if not ok:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode")
    hold = sub.add_parser("attack", help="hold connections to a comm port")
    hold.add_argument("host")
    hold.add_argument("port", type=int)
    hold.add_argument("--connections", type=int, default=1000)
    hold.add_argument("--trickle", type=float, default=None, help="send one byte every this many seconds")
    hold.add_argument("--source", default=None, help="connect from this local address (another 'machine')")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args()
    raise_descriptor_limit()
    if args.mode == "attack":
        stats = asyncio.run(attack(args.host, args.port, args.connections, args.trickle, args.source))
        print(json.dumps(asdict(stats)), flush=True)
    else:
        asyncio.run(benchmark(args.rounds, args.connections))


if __name__ == "__main__":
    main()
