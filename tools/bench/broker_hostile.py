"""The response broker under attack (issue 12 targets in brackets), each against a no-attack baseline in the same run.

  5,000 idle connections (kept up: an evicted one reconnects at once), broker at a 1,024 descriptor
  soft limit: every legitimate report accepted; p99 <= baseline + 50 ms; RSS growth <= 20 MB
  v1 garbage flood (payloads made with the real public key) with v1 off: p50 <= baseline + 5 ms

The broker runs in its own process (broker_server.py serve) with the given descriptor limits; the
attacker in another; this process sends the legitimate reports one after another and times each from
connect to answer. ``--nofile 1024`` leaves the hard limit as it is (the broker raises its soft limit
to it, as it does in production); ``--nofile 1024:1024`` pins both, so only the connection cap and
eviction protect the server. ``--python`` runs the broker with another interpreter (e.g. an older
checkout's venv) for a before/after comparison.

Usage: .venv/bin/python tools/bench/broker_hostile.py [--reports 300] [--idle 5000] [--nofile 1024 --nofile 1024:1024]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests" / "support"))

from report_clients import ACCEPTED, gp_v1_payload, sealed_report, send, v1_info  # noqa: E402

REPORT_TIMEOUT = 15.0


class Broker:
    """broker_server.py serve, driven over its stdin/stdout."""

    def __init__(self, process: asyncio.subprocess.Process, info: dict) -> None:
        self.process = process
        self.address: str = info["address"]
        self.public_key: str = info["public_key"]
        self.log_lines = 0
        self._log_reader = asyncio.ensure_future(self._count_log_lines())

    @classmethod
    async def start(cls, python: str, nofile: str) -> Broker:
        process = await asyncio.create_subprocess_exec(
            python, str(HERE / "broker_server.py"), "kf", "serve", "--nofile", nofile, "--read-timeout", "60",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        assert process.stdout is not None
        return cls(process, json.loads(await process.stdout.readline()))

    async def _count_log_lines(self) -> None:
        assert self.process.stderr is not None
        async for _ in self.process.stderr:
            self.log_lines += 1

    async def command(self, **command: object) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        return json.loads(await asyncio.wait_for(self.process.stdout.readline(), 120))

    async def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self._log_reader.cancel()


async def legitimate_reports(broker: Broker, count: int, tag: str) -> tuple[list[float], int, int]:
    """Send ``count`` reports one after another; return their latencies (s), how many were accepted, peak RSS."""
    latencies, accepted, peak_rss = [], 0, 0
    for n in range(count):
        kernel_id = f"{tag}-{n}"
        token = (await broker.command(expect=kernel_id))["token"]
        line = sealed_report(broker.public_key, kernel_id, token)
        started = time.perf_counter()
        try:
            reply = await asyncio.wait_for(send(broker.address, line), REPORT_TIMEOUT)
        except (OSError, TimeoutError):
            reply = b""
        latencies.append(time.perf_counter() - started)
        accepted += reply == ACCEPTED
        if n % 25 == 0:
            peak_rss = max(peak_rss, (await broker.command(stats=1))["rss_kb"])
    return latencies, accepted, peak_rss


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------------------------------- attackers
async def hold_idle(address: str, count: int, stop: asyncio.Event) -> None:
    """Keep ``count`` connections open that never send a byte; reconnect each one the broker closes."""
    host, port = address.rsplit(":", 1)

    async def one() -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(host, int(port))
            except OSError:
                await asyncio.sleep(0.01)
                continue
            stop_wait = asyncio.ensure_future(stop.wait())
            closed = asyncio.ensure_future(reader.read())
            await asyncio.wait({stop_wait, closed}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            closed.cancel()
            writer.close()

    await asyncio.gather(*(one() for _ in range(count)))


async def flood_v1(address: str, public_key: str, concurrency: int, stop: asyncio.Event) -> None:
    """Send v1 payloads that would decrypt (made with the real public key) as fast as the broker takes them."""
    payloads = [gp_v1_payload(public_key, v1_info(f"kernel-{n}")) for n in range(64)]

    async def one() -> None:
        while not stop.is_set():
            try:
                await send(address, random.choice(payloads), close_after=True)
            except OSError:
                await asyncio.sleep(0.01)

    await asyncio.gather(*(one() for _ in range(concurrency)))


async def attacker_main(kind: str, address: str, public_key: str, size: int) -> None:
    """Run one attack until stdin closes; print one line once it is in full swing."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stop = asyncio.Event()
    attack = asyncio.ensure_future(
        hold_idle(address, size, stop) if kind == "idle" else flood_v1(address, public_key, size, stop))
    await asyncio.sleep(3.0 if kind == "idle" else 1.0)  # let the attack reach its full size before measuring
    print("attacking", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    stop.set()
    await asyncio.wait_for(attack, 30)


async def start_attacker(kind: str, broker: Broker, size: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--attacker", kind, "--address", broker.address, "--public-key", broker.public_key,
        "--size", str(size), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    await asyncio.wait_for(process.stdout.readline(), 60)
    return process


async def stop_attacker(process: asyncio.subprocess.Process) -> None:
    assert process.stdin is not None
    process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), 40)
    except TimeoutError:
        process.kill()
        await process.wait()


# ------------------------------------------------------------------------------------------- scenarios
async def scenario(python: str, nofile: str, kind: str, size: int, reports: int) -> dict:
    broker = await Broker.start(python, nofile)
    try:
        await legitimate_reports(broker, 20, "warmup")
        rss_before = (await broker.command(stats=1))["rss_kb"]
        base, base_ok, _ = await legitimate_reports(broker, reports, "baseline")
        logs_before = broker.log_lines
        attacker = await start_attacker(kind, broker, size)
        try:
            hit, hit_ok, peak_rss = await legitimate_reports(broker, reports, "attacked")
            stats = await broker.command(stats=1)
            opened = (await broker.command(open_file=1))["open_file"]
        finally:
            await stop_attacker(attacker)
        return {
            "nofile": nofile, "attack": f"{size} {'idle connections' if kind == 'idle' else 'v1 flooders'}",
            "base_p50": statistics.median(base), "base_p99": percentile(base, 0.99), "base_ok": base_ok,
            "p50": statistics.median(hit), "p99": percentile(hit, 0.99), "ok": hit_ok, "reports": reports,
            "rss_growth_mb": (max(peak_rss, stats["rss_kb"]) - rss_before) / 1024, "fds": stats["fds"],
            "log_lines": broker.log_lines - logs_before, "counters": stats["counters"], "open_file": opened,
        }
    finally:
        await broker.stop()


def show(r: dict) -> None:
    ms = 1000
    print(f"\n== {r['attack']}, broker descriptor limit {r['nofile']}")
    print(f"  accepted: baseline {r['base_ok']}/{r['reports']}, under attack {r['ok']}/{r['reports']}  "
          "[all]")
    print(f"  p50: baseline {r['base_p50'] * ms:.2f} ms, attack {r['p50'] * ms:.2f} ms, "
          f"+{(r['p50'] - r['base_p50']) * ms:.2f} ms, ratio {r['p50'] / r['base_p50']:.2f}x"
          + ("  [<= +5 ms]" if "v1" in r["attack"] else ""))
    print(f"  p99: baseline {r['base_p99'] * ms:.2f} ms, attack {r['p99'] * ms:.2f} ms, "
          f"+{(r['p99'] - r['base_p99']) * ms:.2f} ms, ratio {r['p99'] / r['base_p99']:.2f}x"
          + ("  [<= +50 ms]" if "idle" in r["attack"] else ""))
    print(f"  broker RSS growth {r['rss_growth_mb']:.1f} MB" + ("  [<= 20 MB]" if "idle" in r["attack"] else "")
          + f"; descriptors open {r['fds']}; could open a file: {r['open_file']}; "
          f"log lines during the attack: {r['log_lines']}")
    print(f"  broker counters: {json.dumps(r['counters'], sort_keys=True)}")


async def main(args: argparse.Namespace) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for nofile in args.nofile or ["1024", "1024:1024"]:
        show(await scenario(args.python, nofile, "idle", args.idle, args.reports))
    show(await scenario(args.python, "1024", "v1", args.v1_flooders, args.reports))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=300)
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--v1-flooders", type=int, default=32, help="concurrent v1 senders")
    parser.add_argument("--nofile", action="append", help="broker descriptor limits SOFT[:HARD] (repeatable)")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the broker")
    parser.add_argument("--attacker", choices=["idle", "v1"], help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--public-key", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.attacker:
        asyncio.run(attacker_main(parsed.attacker, parsed.address, parsed.public_key, parsed.size))
    else:
        asyncio.run(main(parsed))
