"""Warm pools on the embedded default (distributed-provisioner, localhost), against cold starts in the same run:

1. start -> first ``1+1`` executed, from a pool and cold, interleaved (target: pooled <= 0.10 s);
2. ``--burst`` simultaneous starts against a pool of the same size: when the last one has executed (target: 1 s;
   the kernels are shut down after the last one has);
3. the server's CPU while ``--idle`` standbys wait, over ``--idle-seconds`` (target: <= 0.05 % of a core).

4. with ``--docker-image IMAGE``: the same as 1. for ``docker-provisioner`` (host network, broker on 127.0.0.1),
   pooled and cold interleaved in the same run (target: pooled <= 0.10 s);
5. with ``--ssh``: the same for ``distributed-provisioner`` over SSH, to a real sshd on 127.0.0.2 started for the run
   (tests/ssh/sshd.py: generated keys, nothing of the system's touched; target: pooled <= 0.20 s);
6. with ``--swarm-image IMAGE``: the same for ``docker-swarm-provisioner`` on this node's swarm (host network);
   ``--engines-only`` (or ``--docker-only``) skips 1.-3.;
7. with ``--r``: the same as 1. for R kernels (the pure-R launcher, ``Rscript launchers/r/launch_IRkernel.R``,
   IRkernel), pooled and cold interleaved (cold is the floor: no R target is set for pools); with
   ``--docker-r-image IMAGE`` also for R in ``docker-provisioner``. ``--r-only`` skips the others;
8. with ``--kubelite-image IMAGE``: the same as 1. for ``kubernetes-provisioner`` on a kubelite of its own (pods on
   its pod network, the broker on its gateway), pooled and cold interleaved (target: pooled <= 0.20 s);
   ``--kubernetes-only`` skips 1.-3.;
9. with ``--toree``: the same as 1. for an Apache Toree (Scala) kernel through launchers/scala/run.sh (lazy Spark),
   ``--toree-runs`` pooled and cold starts interleaved (target: pooled <= 1 s); ``--toree-only`` skips the others.
   It needs Java 17, the toree and pyspark packages and launchers/scala/dist (tools/build-scala-launcher).

The load average is printed before and after: on a shared machine the figures are only comparable within a run.

Usage: .venv/bin/python tools/bench/warm_pool.py [--runs 10] [--burst 20] [--idle 10] [--idle-seconds 20]
           [--docker-image kernelfleet/kernel-py:dev] [--ssh] [--swarm-image kernelfleet/kernel-py:dev]
           [--engines-only] [--r [--docker-r-image IMAGE] [--r-only]]
           [--kubelite-image kernelfleet/kernel-py:dev [--kubernetes-only]] [--toree [--toree-runs 3] [--toree-only]]
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
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager

from kernelfleet.provisioners.container_argv import container_argv
from kernelfleet.provisioners.leases import close_all
from kernelfleet.provisioners.pool import WarmPool, pools

ROOT = Path(__file__).resolve().parents[2]
SSH_HOST = "127.0.0.2"
PROTOCOL_ARGS = ["--kernel-id", "{kernel_id}", "--port-range", "{port_range}", "--response-address",
                 "{response_address}", "--public-key", "{public_key}"]
R_LAUNCHER = ROOT / "launchers" / "r" / "launch_IRkernel.R"
TOREE_RUN_SH = ROOT / "launchers" / "scala" / "run.sh"
TOREE_TIMEOUT = 600.0  # a cold Toree on a loaded 2-core host
LAUNCHER_ARGV = {
    "python": [sys.executable, "-m", "kernelfleet.launcher", *PROTOCOL_ARGS],
    "R": ["Rscript", str(R_LAUNCHER), *PROTOCOL_ARGS],
}


def write_spec(kernels: Path, name: str, pool_size: int, docker_image: str = "", language: str = "python",
               k8s_image: str = "", *, swarm: bool = False, ssh: dict[str, object] | None = None) -> None:
    config: dict[str, object] = {"warm_pool_size": pool_size, "warm_pool_max_starting": 4}
    provisioner, argv = "distributed-provisioner", LAUNCHER_ARGV[language]
    if docker_image:
        provisioner, argv = "docker-swarm-provisioner" if swarm else "docker-provisioner", container_argv()
        config |= {"image_name": docker_image, "network": "host"}
    if k8s_image:
        provisioner, argv = "kubernetes-provisioner", container_argv()
        config |= {"image_name": k8s_image, "launch_timeout": 120}
    if ssh:
        config |= ssh
    spec = {"argv": argv, "display_name": name, "language": language, "metadata": {
        "kernel_provisioner": {"provisioner_name": provisioner, "config": config}}}
    (kernels / name).mkdir(parents=True)
    (kernels / name / "kernel.json").write_text(json.dumps(spec))


def write_toree_spec(kernels: Path, name: str, pool_size: int) -> None:
    """A Scala kernelspec on the repository's run.sh (lazy Spark, loopback), as ``jupyter ssh-spec install
    --language scala`` writes it."""
    argv = [str(TOREE_RUN_SH), *PROTOCOL_ARGS,
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


async def engine_bench(kernels: Path, results: dict[str, object], engine: str, runs: int, **spec: object) -> None:
    """One engine's row: ``runs`` starts from a pool of one and as many cold ones, interleaved; the pool is closed
    after. ``spec``: ``write_spec``'s engine arguments."""
    ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
    write_spec(kernels, f"{engine}_pooled", 1, **spec)  # type: ignore[arg-type]
    write_spec(kernels, f"{engine}_cold", 0, **spec)  # type: ignore[arg-type]
    pool = await warm(ksm, f"{engine}_pooled", 1)
    pooled, cold = await interleaved(ksm, pool, f"{engine}_pooled", f"{engine}_cold", runs)
    assert pool.stats["claimed"] == runs, pool.stats
    row(results, engine, pooled, cold)
    await pool.close()


async def kubernetes_bench(args: argparse.Namespace, kernels: Path, results: dict[str, object]) -> None:
    """kubernetes-provisioner on a kubelite started here (pods are containers of the shared dockerd, on kubelite's own
    pod network; the broker listens on its gateway, as the tests' fixture sets it)."""
    from kernelfleet.kubelite import KubeLite

    await close_all()  # a broker made for another engine's run advertises another address
    saved = {name: os.environ.get(name) for name in ("KUBECONFIG", "KF_RESPONSE_IP")}
    kube = KubeLite()
    await kube.start()
    try:
        assert kube.pod_network is not None and kube.pod_network.gateway
        os.environ["KUBECONFIG"] = str(kube.write_kubeconfig(kernels.parent / "kubeconfig"))
        os.environ["KF_RESPONSE_IP"] = kube.pod_network.gateway
        os.environ.setdefault("KF_RESPONSE_PORT", "0")
        await engine_bench(kernels, results, "kubernetes", args.runs, k8s_image=args.kubelite_image)
        await close_all()  # the pool's standby pods go before kubelite does
    finally:
        await kube.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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


async def simultaneous_starts(ksm: KernelSpecManager, name: str, count: int) -> list[float]:
    """``count`` starts of ``name`` at once, each to its first ``1+1`` executed; the kernels are shut down only once
    every one has executed (or failed), so that no shutdown's work falls inside the measured window."""
    all_executed = asyncio.Event()
    finished = 0

    async def one() -> float:
        nonlocal finished
        km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=ksm)
        started = time.perf_counter()
        kc = None
        try:
            await km.start_kernel()
            kc = km.client()
            kc.start_channels()
            msg_id = kc.execute("1 + 1")
            while (await kc.get_shell_msg(timeout=60))["parent_header"].get("msg_id") != msg_id:
                pass
            return time.perf_counter() - started
        finally:
            finished += 1
            if finished == count:
                all_executed.set()
            await asyncio.wait_for(all_executed.wait(), 300)
            if kc is not None:
                kc.stop_channels()
            await km.shutdown_kernel(now=True)

    return await asyncio.gather(*(one() for _ in range(count)))


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def bench(args: argparse.Namespace, kernels: Path) -> dict[str, object]:
    results: dict[str, object] = {"load_average_before": load_average()}
    args.toree = args.toree or args.toree_only
    if args.toree:
        await toree_bench(args, kernels, results)
    if args.docker_image or args.docker_r_image or args.swarm_image or args.ssh:  # before the first launch starts
        os.environ.setdefault("KF_RESPONSE_IP", "127.0.0.1")  # the broker: host network and sshd report on loopback
    if args.r:
        await engine_bench(kernels, results, "r_local", args.runs, language="R")
        if args.docker_r_image:
            await engine_bench(kernels, results, "r_docker", args.runs, docker_image=args.docker_r_image,
                               language="R")
    if not args.r_only:
        if args.docker_image:
            await engine_bench(kernels, results, "docker", args.runs, docker_image=args.docker_image)
        if args.swarm_image:
            await engine_bench(kernels, results, "swarm", args.runs, docker_image=args.swarm_image, swarm=True)
        if args.ssh:
            await ssh_bench(args, kernels, results)
    if args.kubelite_image:
        await kubernetes_bench(args, kernels / "k8s", results)
    if args.docker_only or args.engines_only or args.r_only or args.kubernetes_only or args.toree_only:
        await close_all()
        results["load_average_after"] = load_average()
        return results
    ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
    write_spec(kernels, "burst", args.burst)
    write_spec(kernels, "idle", args.idle)
    await engine_bench(kernels, results, "local", args.runs)

    burst_pool = await warm(ksm, "burst", args.burst)
    burst = await simultaneous_starts(ksm, "burst", args.burst)
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
    results["load_average_after"] = load_average()
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
    parser.add_argument("--r", action="store_true", help="also measure R kernels (pure-R launcher, IRkernel)")
    parser.add_argument("--docker-r-image", default="", help="with --r: also R in docker-provisioner, this image")
    parser.add_argument("--r-only", action="store_true", help="only the R rows")
    parser.add_argument("--kubelite-image", default="",
                        help="also measure kubernetes-provisioner on a kubelite of its own with this image")
    parser.add_argument("--kubernetes-only", action="store_true", help="only the Kubernetes row")
    parser.add_argument("--toree", action="store_true", help="also measure a pooled Toree (Scala) kernel")
    parser.add_argument("--toree-runs", type=int, default=3)
    parser.add_argument("--toree-only", action="store_true", help="only the Toree row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(bench(args, Path(tmp)))
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    for engine in ("local", "docker", "swarm", "ssh", "r_local", "r_docker", "kubernetes", "toree"):
        if f"{engine}_start_to_1+1_cold_median_s" in results:
            pooled = results[f"{engine}_start_to_1+1_pooled_median_s"]
            cold = results[f"{engine}_start_to_1+1_cold_median_s"]
            print(f"{engine + ' pooled / cold':<{width}}  {pooled / cold:.2f}")  # type: ignore[operator]


if __name__ == "__main__":
    main()
