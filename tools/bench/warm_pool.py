"""Warm pools on the embedded default (distributed-provisioner, localhost), against cold starts in the same run:

1. start -> first ``1+1`` executed, from a pool and cold, interleaved (target: pooled <= 0.10 s);
2. ``--burst`` simultaneous starts against a pool of the same size: when the last one has executed (target: 1 s);
3. the server's CPU while ``--idle`` standbys wait, over ``--idle-seconds`` (target: <= 0.05 % of a core).

Usage: .venv/bin/python tools/bench/warm_pool.py [--runs 10] [--burst 20] [--idle 10] [--idle-seconds 20]
Docker, Kubernetes, SSH and Swarm kernels start cold for now (docs/warm-pools.md): nothing to measure there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import start_to_first_execute
from jupyter_client.kernelspec import KernelSpecManager

from kernelfleet.provisioners.leases import close_all
from kernelfleet.provisioners.pool import WarmPool, pools

LAUNCHER_ARGV = [sys.executable, "-m", "kernelfleet.launcher", "--kernel-id", "{kernel_id}", "--port-range",
                 "{port_range}", "--response-address", "{response_address}", "--public-key", "{public_key}"]


def write_spec(kernels: Path, name: str, pool_size: int) -> None:
    spec = {"argv": LAUNCHER_ARGV, "display_name": name, "language": "python", "metadata": {
        "kernel_provisioner": {"provisioner_name": "distributed-provisioner",
                               "config": {"warm_pool_size": pool_size, "warm_pool_max_starting": 4}}}}
    (kernels / name).mkdir(parents=True)
    (kernels / name / "kernel.json").write_text(json.dumps(spec))


def pool_named(size: int) -> WarmPool:
    return next(p for p in pools() if p.settings.size == size)


async def full(pool: WarmPool) -> None:
    await asyncio.wait_for(pool.until(lambda p: len(p.idle) == p.settings.size and p.starting == 0), 300)


async def warm(ksm: KernelSpecManager, name: str, size: int) -> WarmPool:
    await start_to_first_execute(ksm, name)  # creates the pool (this start is cold)
    pool = pool_named(size)
    await full(pool)
    return pool


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def bench(args: argparse.Namespace, kernels: Path) -> dict[str, object]:
    ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
    write_spec(kernels, "pooled", 1)
    write_spec(kernels, "cold", 0)
    write_spec(kernels, "burst", args.burst)
    write_spec(kernels, "idle", args.idle)
    results: dict[str, object] = {}

    pool = await warm(ksm, "pooled", 1)
    pooled, cold = [], []
    for _ in range(args.runs):
        await full(pool)
        pooled.append(await start_to_first_execute(ksm, "pooled"))
        cold.append(await start_to_first_execute(ksm, "cold"))
    assert pool.stats["claimed"] == args.runs, pool.stats
    results["start_to_1+1_pooled_median_s"] = round(statistics.median(pooled), 3)
    results["start_to_1+1_cold_median_s"] = round(statistics.median(cold), 3)
    results["pooled_runs_s"] = [round(s, 3) for s in pooled]
    results["cold_runs_s"] = [round(s, 3) for s in cold]
    await pool.close()

    burst_pool = await warm(ksm, "burst", args.burst)
    # All start at once; each is shut down once it has executed, so the slowest one's time is when all had executed.
    burst = await asyncio.gather(*(start_to_first_execute(ksm, "burst") for _ in range(args.burst)))
    results[f"burst_{args.burst}_all_executed_s"] = round(max(burst), 3)
    results["burst_claimed"] = burst_pool.stats["claimed"]
    await burst_pool.close()

    idle_pool = await warm(ksm, "idle", args.idle)
    before, wall = cpu_seconds(), time.perf_counter()
    await asyncio.sleep(args.idle_seconds)  # the measurement window itself: the server must do nothing in it
    cpu, elapsed = cpu_seconds() - before, time.perf_counter() - wall
    results[f"server_cpu_{args.idle}_idle_standbys_pct_of_core"] = round(100 * cpu / elapsed, 4)
    results["idle_pool_stats"] = dict(idle_pool.stats)
    await close_all()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--idle", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(bench(args, Path(tmp)))
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    pooled, cold = results["start_to_1+1_pooled_median_s"], results["start_to_1+1_cold_median_s"]
    print(f"{'pooled / cold':<{width}}  {pooled / cold:.2f}")  # type: ignore[operator]


if __name__ == "__main__":
    main()
