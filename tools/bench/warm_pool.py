"""Warm pools on the embedded default (distributed-provisioner, localhost), against cold starts in the same run:

1. start -> first ``1+1`` executed, from a pool and cold, interleaved (target: pooled <= 0.10 s);
2. ``--burst`` simultaneous starts against a pool of the same size: when the last one has executed (target: 1 s);
3. the server's CPU while ``--idle`` standbys wait, over ``--idle-seconds`` (target: <= 0.05 % of a core).

4. with ``--docker-image IMAGE``: the same as 1. for ``docker-provisioner`` (host network, broker on 127.0.0.1),
   pooled and cold interleaved in the same run (target: pooled <= 0.10 s);
5. with ``--ssh``: the same for ``distributed-provisioner`` over SSH, to a real sshd on 127.0.0.2 started for the run
   (tests/ssh/sshd.py: generated keys, nothing of the system's touched; target: pooled <= 0.20 s);
6. with ``--swarm-image IMAGE``: the same for ``docker-swarm-provisioner`` on this node's swarm (host network).

``--engines-only`` (or ``--docker-only``) skips 1.-3. The load average is printed before and after: on a shared
machine the figures are only comparable within one run.

Usage: .venv/bin/python tools/bench/warm_pool.py [--runs 10] [--burst 20] [--idle 10] [--idle-seconds 20]
           [--docker-image kernelfleet/kernel-py:dev] [--ssh] [--swarm-image kernelfleet/kernel-py:dev]
           [--engines-only]
Kubernetes kernels are another engine's (docs/warm-pools.md).
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

ROOT = Path(__file__).resolve().parents[2]
SSH_HOST = "127.0.0.2"
LAUNCHER_ARGV = [sys.executable, "-m", "kernelfleet.launcher", "--kernel-id", "{kernel_id}", "--port-range",
                 "{port_range}", "--response-address", "{response_address}", "--public-key", "{public_key}"]


def write_spec(kernels: Path, name: str, pool_size: int, docker_image: str = "", *, swarm: bool = False,
               ssh: dict[str, object] | None = None) -> None:
    config: dict[str, object] = {"warm_pool_size": pool_size, "warm_pool_max_starting": 4}
    provisioner, argv = "distributed-provisioner", LAUNCHER_ARGV
    if docker_image:
        provisioner, argv = "docker-swarm-provisioner" if swarm else "docker-provisioner", container_argv()
        config |= {"image_name": docker_image, "network": "host"}
    if ssh:
        config |= ssh
    spec = {"argv": argv, "display_name": name, "language": "python", "metadata": {
        "kernel_provisioner": {"provisioner_name": provisioner, "config": config}}}
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


async def interleaved(ksm: KernelSpecManager, pool: WarmPool, pooled_spec: str, cold_spec: str,
                      runs: int) -> tuple[list[float], list[float]]:
    """``runs`` starts of each, alternating, each pooled one from a full pool."""
    pooled, cold = [], []
    for _ in range(runs):
        await full(pool)
        pooled.append(await start_to_first_execute(ksm, pooled_spec))
        cold.append(await start_to_first_execute(ksm, cold_spec))
    return pooled, cold


def row(results: dict[str, object], engine: str, pooled: list[float], cold: list[float]) -> None:
    results[f"{engine}_start_to_1+1_pooled_median_s"] = round(statistics.median(pooled), 3)
    results[f"{engine}_start_to_1+1_cold_median_s"] = round(statistics.median(cold), 3)
    results[f"{engine}_pooled_runs_s"] = [round(s, 3) for s in pooled]
    results[f"{engine}_cold_runs_s"] = [round(s, 3) for s in cold]


async def engine_bench(kernels: Path, results: dict[str, object], engine: str, runs: int, **spec: object) -> None:
    """Pooled and cold starts of one engine, interleaved; the pool (size 1) is closed after."""
    os.environ.setdefault("KF_RESPONSE_IP", "127.0.0.1")  # host network / sshd on this machine: report on loopback
    ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
    write_spec(kernels, f"{engine}_pooled", 1, **spec)  # type: ignore[arg-type]
    write_spec(kernels, f"{engine}_cold", 0, **spec)  # type: ignore[arg-type]
    pool = await warm(ksm, f"{engine}_pooled", 1)
    pooled, cold = await interleaved(ksm, pool, f"{engine}_pooled", f"{engine}_cold", runs)
    assert pool.stats["claimed"] == runs, pool.stats
    row(results, engine, pooled, cold)
    await pool.close()


async def ssh_bench(args: argparse.Namespace, kernels: Path, results: dict[str, object]) -> None:
    """SSH: a real sshd on 127.0.0.2 for the run; the launcher is this venv's, as in tests/ssh."""
    sys.path.insert(0, str(ROOT / "tests" / "ssh"))
    sys.path.insert(0, str(ROOT / "tests" / "support"))
    from sshd import start_cluster

    with tempfile.TemporaryDirectory() as tmp:
        cluster = start_cluster(Path(tmp) / "sshd", (SSH_HOST,))
        try:
            await engine_bench(kernels, results, "ssh", args.runs, ssh={
                "remote_hosts": [SSH_HOST], "ssh_port": cluster.port, "ssh_user": "root",
                "ssh_key_files": [str(cluster.client_key)], "known_hosts": str(cluster.known_hosts),
                "remote_log_dir": tmp})
            await close_all()
        finally:
            cluster.stop()


async def bench(args: argparse.Namespace, kernels: Path) -> dict[str, object]:
    results: dict[str, object] = {"load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    if args.docker_image:
        await engine_bench(kernels, results, "docker", args.runs, docker_image=args.docker_image)
    if args.swarm_image:
        await engine_bench(kernels, results, "swarm", args.runs, docker_image=args.swarm_image, swarm=True)
    if args.ssh:
        await ssh_bench(args, kernels, results)
    if args.docker_only or args.engines_only:
        results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        await close_all()
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
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--idle", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--docker-image", default="", help="also measure docker-provisioner with this image")
    parser.add_argument("--docker-only", action="store_true", help="only the engines' rows (old name)")
    parser.add_argument("--ssh", action="store_true", help="also measure distributed-provisioner over SSH")
    parser.add_argument("--swarm-image", default="", help="also measure docker-swarm-provisioner with this image")
    parser.add_argument("--engines-only", action="store_true", help="only the Docker, Swarm and SSH rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(bench(args, Path(tmp)))
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    for engine in ("local", "docker", "swarm", "ssh"):
        if f"{engine}_start_to_1+1_cold_median_s" in results:
            pooled = results[f"{engine}_start_to_1+1_pooled_median_s"]
            cold = results[f"{engine}_start_to_1+1_cold_median_s"]
            print(f"{engine + ' pooled / cold':<{width}}  {pooled / cold:.2f}")  # type: ignore[operator]


if __name__ == "__main__":
    main()
