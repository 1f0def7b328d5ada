"""What launch events cost a launch (target: at most 5 ms), events on against events off in the same run.

Two figures:

* whole launches: the embedded default (local launcher) started and stopped, kernelspecs with ``launch_events``
  on and off interleaved, under a real jupyter_events ``EventLogger`` with a subscriber that serialises every
  event as jupyter_server's websocket does; the median start time of each and their difference (noisy: a launch
  takes hundreds of milliseconds on a shared machine);
* the events' own cost per launch, measured directly: one launch's worth of events (accepted, host chosen,
  launcher started, reported, connected and its journal line) emitted through the same logger and subscriber,
  repeated; the mean per launch (precise: the target is judged on it, the whole-launch difference confirms it).

Usage: .venv/bin/python tools/bench/launch_events.py [--runs 10] [--emits 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_events import EventLogger
from traitlets import Instance
from traitlets.config import LoggingConfigurable

from kernelfleet.provisioners.launch_events import SCHEMA_ID, LaunchEventSettings, Phase
from kernelfleet.provisioners.leases import close_all

LAUNCHER = [sys.executable, "-m", "kernelfleet.launcher", "--kernel-id", "{kernel_id}", "--port-range", "{port_range}",
            "--response-address", "{response_address}", "--public-key", "{public_key}"]
TARGET_MS = 5.0


class BenchServer(LoggingConfigurable):  # type: ignore[misc]
    """Stands for the ServerApp: owns the EventLogger the provisioners find up their parent chain."""

    event_logger = Instance(EventLogger, args=())


def write_spec(kernels: Path, name: str, events: bool, journal: Path) -> None:
    (kernels / name).mkdir(parents=True)
    config = {"launch_events": events, "launch_journal": str(journal) if events else ""}
    (kernels / name / "kernel.json").write_text(json.dumps({
        "argv": LAUNCHER, "env": {}, "display_name": name, "language": "python",
        "metadata": {"kernel_provisioner": {"provisioner_name": "distributed-provisioner", "config": config}}}))


def subscribe(logger: EventLogger, received: list[str]) -> None:
    async def listener(logger: EventLogger, schema_id: str, data: dict[str, Any]) -> None:
        received.append(json.dumps(dict(schema_id=schema_id, **data)))  # what the websocket handler writes

    logger.add_listener(schema_id=SCHEMA_ID, listener=listener)


async def one_start(server: BenchServer, ksm: KernelSpecManager, name: str) -> float:
    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=ksm, parent=server)
    started = time.perf_counter()
    await km.start_kernel()
    elapsed = time.perf_counter() - started
    await km.shutdown_kernel(now=True)
    return elapsed


async def whole_launches(server: BenchServer, ksm: KernelSpecManager, runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"on": [], "off": []}
    await one_start(server, ksm, "events_off")  # warm-up: imports, the broker
    for run in range(runs):
        for mode in (("on", "off") if run % 2 else ("off", "on")):
            times[mode].append(await one_start(server, ksm, f"events_{mode}"))
    return times


async def events_per_launch(server: BenchServer, journal: Path, emits: int) -> float:
    """Mean seconds that one launch's events (and its journal line) take, emitted through the real logger."""
    settings = LaunchEventSettings(parent=LoggingConfigurable(parent=server), launch_journal=str(journal))
    started = time.perf_counter()
    for n in range(emits):
        progress = settings.begin_progress(f"bench-{n}", "local")
        progress.emit(Phase.ACCEPTED)
        progress.emit(Phase.HOST_CHOSEN, host="localhost")
        progress.emit(Phase.LAUNCHER_STARTED)
        progress.emit(Phase.REPORTED, message="python/0.1.0")
        progress.finish()
        await asyncio.sleep(0)  # the subscriber's tasks run, as they would between a launch's steps
    elapsed = time.perf_counter() - started
    if progress.journal is not None:
        await progress.journal.flush()
    return elapsed / emits


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--emits", type=int, default=2000)
    args = parser.parse_args()
    server = BenchServer()
    received: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        kernels, journal = Path(tmp) / "kernels", Path(tmp) / "launches.jsonl"
        for mode in ("on", "off"):
            write_spec(kernels, f"events_{mode}", mode == "on", journal)
        ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
        from kernelfleet.provisioners.launch_events import server_event_logger

        server_event_logger(LaunchEventSettings(parent=LoggingConfigurable(parent=server)))  # registers the schema
        subscribe(server.event_logger, received)
        try:
            times = await whole_launches(server, ksm, args.runs)
        finally:
            await close_all()
        launch_events = len(received)
        per_launch = await events_per_launch(server, Path(tmp) / "direct.jsonl", args.emits)
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    print(f"whole launches ({args.runs} each, interleaved; {launch_events} events received by the subscriber):")
    print(f"  events off  median {off * 1000:8.1f} ms")
    print(f"  events on   median {on * 1000:8.1f} ms   difference {(on - off) * 1000:+.1f} ms "
          f"(ratio {on / off:.3f})")
    print(f"events' own cost per launch (5 events + journal line, {args.emits} launches, real EventLogger and "
          f"subscriber): {per_launch * 1000:.3f} ms   target <= {TARGET_MS:g} ms: "
          f"{'met' if per_launch * 1000 <= TARGET_MS else 'NOT met'}")


if __name__ == "__main__":
    asyncio.run(main())
