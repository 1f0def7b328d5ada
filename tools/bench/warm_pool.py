"""Warm pools on the embedded default (distributed-provisioner, localhost), against cold starts in the same run:

1. start -> first ``1+1`` executed, from a pool and cold, interleaved (target: pooled <= 0.10 s);
2. ``--burst`` simultaneous starts against a pool of the same size: when the last one has executed (target: 1 s);
3. the server's CPU while ``--idle`` standbys wait, over ``--idle-seconds`` (target: <= 0.05 % of a core).

4. with ``--docker-image IMAGE``: the same as 1. for ``docker-provisioner`` (host network, broker on 127.0.0.1),
   pooled and cold interleaved in the same run (target: pooled <= 0.10 s); ``--docker-only`` skips 1.-3.
5. with ``--toree``: the same as 1. for an Apache Toree (Scala) kernel through launchers/scala/run.sh (lazy Spark),
   ``--toree-runs`` pooled and cold starts interleaved (target: pooled <= 1 s); ``--toree-only`` skips 1.-4.

Every run prints the host's load average before and after: on a shared host the figures are only comparable
side by side (pooled against cold in the same run).

Usage: .venv/bin/python tools/bench/warm_pool.py [--runs 10] [--burst 20] [--idle 10] [--idle-seconds 20]
           [--docker-image kernelfleet/kernel-py:dev [--docker-only]] [--toree [--toree-runs 3] [--toree-only]]
The Toree case needs Java 17, the toree and pyspark packages and launchers/scala/dist (tools/build-scala-launcher).
Kubernetes, SSH and Swarm kernels start cold for now (docs/warm-pools.md): nothing to measure there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import start_to_first_execute
from jupyter_client.kernelspec import KernelSpecManager

from kernelfleet.provisioners.container_argv import container_argv
from kernelfleet.provisioners.leases import close_all
from kernelfleet.provisioners.pool import WarmPool, pools

TOREE_RUN_SH = Path(__file__).resolve().parents[2] / "launchers" / "scala" / "run.sh"
TOREE_TIMEOUT = 600.0  # a cold Toree on a loaded 2-core host
LAUNCHER_ARGV = [sys.executable, "-m", "kernelfleet.launcher", "--kernel-id", "{kernel_id}", "--port-range",
                 "{port_range}", "--response-address", "{response_address}", "--public-key", "{public_key}"]


def write_spec(kernels: Path, name: str, pool_size: int, docker_image: str = "") -> None:
    config: dict[str, object] = {"warm_pool_size": pool_size, "warm_pool_max_starting": 4}
    provisioner, argv = "distributed-provisioner", LAUNCHER_ARGV
    if docker_image:
        provisioner, argv = "docker-provisioner", container_argv()
        config |= {"image_name": docker_image, "network": "host"}
    spec = {"argv": argv, "display_name": name, "language": "python", "metadata": {
        "kernel_provisioner": {"provisioner_name": provisioner, "config": config}}}
    (kernels / name).mkdir(parents=True)
    (kernels / name / "kernel.json").write_text(json.dumps(spec))


def write_toree_spec(kernels: Path, name: str, pool_size: int) -> None:
    """A Scala kernelspec on the repository's run.sh (lazy Spark, loopback), as ``jupyter ssh-spec install
    --language scala`` writes it."""
    argv = [str(TOREE_RUN_SH), *LAUNCHER_ARGV[LAUNCHER_ARGV.index("--kernel-id"):],
            "--spark-context-initialization-mode", "lazy"]
    spec = {"argv": argv, "display_name": name, "language": "scala", "interrupt_mode": "signal",
            "env": {"KERNEL_IP": "127.0.0.1", "SPARK_LOCAL_IP": "127.0.0.1"}, "metadata": {"kernel_provisioner": {
                "provisioner_name": "distributed-provisioner",
                "config": {"warm_pool_size": pool_size, "launch_timeout": TOREE_TIMEOUT}}}}
    (kernels / name).mkdir(parents=True)
    (kernels / name / "kernel.json").write_text(json.dumps(spec))


def pool_named(size: int) -> WarmPool:
    return next(p for p in pools() if p.settings.size == size)


async def full(pool: WarmPool, timeout: float = 300) -> None:
    await asyncio.wait_for(pool.until(lambda p: len(p.idle) == p.settings.size and p.starting == 0), timeout)


async def warm(ksm: KernelSpecManager, name: str, size: int, timeout: float = 300) -> WarmPool:
    await start_to_first_execute(ksm, name, timeout=timeout)  # creates the pool (this start is cold)
    pool = pool_named(size)
    await full(pool, timeout)
    return pool


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def interleaved(ksm: KernelSpecManager, pool: WarmPool, pooled_spec: str, cold_spec: str,
                      runs: int, timeout: float = 300) -> tuple[list[float], list[float]]:
    """``runs`` starts of each, alternating, each pooled one from a full pool."""
    pooled, cold = [], []
    for _ in range(runs):
        await full(pool, timeout)
        pooled.append(await start_to_first_execute(ksm, pooled_spec, timeout=timeout))
        cold.append(await start_to_first_execute(ksm, cold_spec, timeout=timeout))
    return pooled, cold


def row(results: dict[str, object], engine: str, pooled: list[float], cold: list[float]) -> None:
    results[f"{engine}_start_to_1+1_pooled_median_s"] = round(statistics.median(pooled), 3)
    results[f"{engine}_start_to_1+1_cold_median_s"] = round(statistics.median(cold), 3)
    results[f"{engine}_pooled_runs_s"] = [round(s, 3) for s in pooled]
    results[f"{engine}_cold_runs_s"] = [round(s, 3) for s in cold]


async def docker_bench(args: argparse.Namespace, kernels: Path, results: dict[str, object]) -> None:
    os.environ.setdefault("KF_RESPONSE_IP", "127.0.0.1")  # host network: the containers report on loopback
    ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
    write_spec(kernels, "docker_pooled", 1, args.docker_image)
    write_spec(kernels, "docker_cold", 0, args.docker_image)
    pool = await warm(ksm, "docker_pooled", 1)
    pooled, cold = await interleaved(ksm, pool, "docker_pooled", "docker_cold", args.runs)
    assert pool.stats["claimed"] == args.runs, pool.stats
    row(results, "docker", pooled, cold)
    await pool.close()


async def toree_bench(args: argparse.Namespace, kernels: Path, results: dict[str, object]) -> None:
    os.environ.setdefault("KF_RESPONSE_IP", "127.0.0.1")
    ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
    write_toree_spec(kernels, "toree_pooled", 1)
    write_toree_spec(kernels, "toree_cold", 0)
    pool = await warm(ksm, "toree_pooled", 1, TOREE_TIMEOUT)
    pooled, cold = await interleaved(ksm, pool, "toree_pooled", "toree_cold", args.toree_runs, TOREE_TIMEOUT)
    assert pool.stats["claimed"] == args.toree_runs, pool.stats
    row(results, "toree", pooled, cold)
    await pool.close()


async def bench(args: argparse.Namespace, kernels: Path) -> dict[str, object]:
    results: dict[str, object] = {"load_average_before": [round(x, 2) for x in os.getloadavg()]}
    args.toree = args.toree or args.toree_only
    if args.toree:
        await toree_bench(args, kernels, results)
    if args.toree_only:
        await close_all()
        results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        return results
    if args.docker_image:
        await docker_bench(args, kernels, results)
    if args.docker_only:
        await close_all()
        results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        return results
    ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
    write_spec(kernels, "pooled", 1)
    write_spec(kernels, "cold", 0)
    write_spec(kernels, "burst", args.burst)
    write_spec(kernels, "idle", args.idle)

    pool = await warm(ksm, "pooled", 1)
    pooled, cold = await interleaved(ksm, pool, "pooled", "cold", args.runs)
    assert pool.stats["claimed"] == args.runs, pool.stats
    row(results, "local", pooled, cold)
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
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--idle", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--docker-image", default="", help="also measure docker-provisioner with this image")
    parser.add_argument("--docker-only", action="store_true", help="only the Docker row")
    parser.add_argument("--toree", action="store_true", help="also measure a pooled Toree (Scala) kernel")
    parser.add_argument("--toree-runs", type=int, default=3)
    parser.add_argument("--toree-only", action="store_true", help="only the Toree row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(bench(args, Path(tmp)))
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    for engine in ("local", "docker", "toree"):
        if f"{engine}_start_to_1+1_cold_median_s" in results:
            pooled = results[f"{engine}_start_to_1+1_pooled_median_s"]
            cold = results[f"{engine}_start_to_1+1_cold_median_s"]
            print(f"{engine + ' pooled / cold':<{width}}  {pooled / cold:.2f}")  # type: ignore[operator]


if __name__ == "__main__":
    main()
