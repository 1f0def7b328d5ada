"""How soon a dead kernel is known, per engine and fault (target: <= 1 s), and Gateway Provisioners 0.5.0's figure
for the local engine in the same run.

Each run starts a kernel, lets a ``provisioner.wait()`` get under way (as a server's would be), deals the fault
with one system or API call, and measures two things:

  wait   seconds until ``wait()`` returned (woken by the engine: process exit, Docker event, pod watch, the SSH
         host's exit watch) and ``poll()`` agreed: the event path;
  poll   seconds until ``poll()``, asked every 20 ms from the fault on, first said "exited": what jupyter_client's
         restarter sees on its next tick.

Faults: kill -9 of the kernel and of its launcher (every engine), the container/service/pod removed by someone
else and an OOM kill (containers; the OOM figure includes the cell's allocation up to the limit). GP has no
event path: its ``poll()`` figure is measured the same way, with its launcher (which is its kernel) killed.

Engines: local (embedded default), ssh (an sshd on 127.0.0.2 started for the run, tests/ssh/sshd.py), docker,
swarm (the running dockerd and its one-node swarm), kubernetes (kubelite, packages/kubelite).
Usage: .venv/bin/python tools/bench/death_detection.py [--runs 3] [--engines local,ssh,docker,swarm,kubernetes]
       [--image kernelfleet/kernel-py:dev] [--no-gp]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SAMPLE = 0.02
SETTLE = 1.0  # the waiter is established (an SSH exit watch opened) before the fault, as on a busy server
TARGET = 1.0
FAULTS = {
    "local": ("kernel", "launcher"),
    "ssh": ("kernel", "launcher"),
    "docker": ("kernel", "launcher", "removed", "oom"),
    "swarm": ("kernel", "launcher", "removed", "oom"),
    "kubernetes": ("kernel", "launcher", "removed", "oom"),
}


# ----------------------------------------------------------------------------------------- GP (its own venv)
async def gp_probe(kernel_dir: str, name: str, runs: int) -> None:
    """Run inside GP's venv: kill -9 GP's local launcher (its kernel) and sample poll(); prints a JSON list."""
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    times = []
    for _ in range(runs):
        km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[kernel_dir]))
        await km.start_kernel()
        try:
            os.kill(int(km.provisioner.pid), signal.SIGKILL)
            started = time.perf_counter()
            while await km.provisioner.poll() is None:  # noqa: ASYNC110 - GP has nothing to wait on
                await asyncio.sleep(SAMPLE)
            times.append(time.perf_counter() - started)
        finally:
            await km.shutdown_kernel(now=True)
    print(json.dumps(times))


def gp_local(runs: int) -> list[float]:
    sys.path.insert(0, str(HERE))
    from common import ensure_gp_venv

    gp_python = ensure_gp_venv()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([str(gp_python.parent / "jupyter-ssh-spec"), "install", "--prefix", tmp, "--kernel-name", "gp",
                        "--remote-hosts", "localhost"], check=True, capture_output=True)
        env = {**os.environ, "KERNEL_USERNAME": "bench", "GP_RESPONSE_IP": "127.0.0.1",
               "PATH": f"{gp_python.parent}:{os.environ['PATH']}"}
        out = subprocess.run([str(gp_python), __file__, "--gp-probe", str(Path(tmp) / "share/jupyter/kernels"), "gp",
                              str(runs)], capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise SystemExit(f"GP probe failed: {out.stderr[-3000:]}")
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


# ----------------------------------------------------------------------------------------- ours
def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


async def container_of(engine: str, km: Any) -> str:
    prov = km.provisioner
    if engine == "kubernetes":
        filters = ["--filter", "label=kubelite=1", "--filter", f"label=io.kubernetes.pod.name={prov.pod_name}"]
    else:
        filters = ["--filter", f"label=kernel_id={km.kernel_id}"]
    return docker("ps", "-q", "--no-trunc", *filters).split()[0]


async def prepare_fault(engine: str, fault: str, km: Any) -> tuple[Callable[[], Awaitable[Any]], Any]:
    """The fault as one call, and a client to stop afterwards (the OOM cell's)."""
    from death_testing import ALLOCATE, host_pid, pid_in_container

    prov = km.provisioner
    if engine in ("local", "ssh"):
        pid = prov.kernel_pgid if fault == "kernel" else (prov.local_process.pid if engine == "local"
                                                            else prov.launcher_pid)
        return _kill(pid), None
    if fault == "oom":
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)

        async def allocate() -> None:
            client.execute(ALLOCATE)
        return allocate, client
    if fault == "removed":
        if engine == "docker":
            return (lambda: prov.engine.client.containers.container(prov.container_id).delete(force=True)), None
        if engine == "swarm":
            return (lambda: prov.engine.client.services.delete(prov.service_id)), None
        core = await prov.core()
        return (lambda: core.delete_namespaced_pod(prov.pod_name, prov.kernel_namespace, grace_period_seconds=0)), None
    inner = await pid_in_container(km, fault)
    container = await container_of(engine, km)
    pid = host_pid(docker("top", container, "-eo", "pid").split()[1:], inner)
    return _kill(pid), None


def _kill(pid: int) -> Callable[[], Awaitable[None]]:
    async def kill() -> None:
        os.kill(pid, signal.SIGKILL)
    return kill


async def one_run(engine: str, fault: str, ksm: Any) -> tuple[float, float]:
    from jupyter_client import AsyncKernelManager

    km = AsyncKernelManager(kernel_name=engine, kernel_spec_manager=ksm)
    env = {**os.environ, "KERNEL_MEMORY_LIMIT": "160Mi"} if engine == "kubernetes" and fault == "oom" else None
    await km.start_kernel(**({"env": env} if env else {}))
    prov = km.provisioner
    client = None
    try:
        deal, client = await prepare_fault(engine, fault, km)
        waiter = asyncio.ensure_future(prov.wait())
        await asyncio.sleep(SETTLE)
        assert not waiter.done(), f"{engine}: wait() returned before the fault"
        polled: list[float] = []

        async def sample(started: float) -> None:
            while await prov.poll() is None:  # noqa: ASYNC110 - sampling is what this figure measures
                await asyncio.sleep(SAMPLE)
            polled.append(time.perf_counter() - started)

        started = time.perf_counter()
        await deal()
        sampler = asyncio.ensure_future(sample(started))
        await asyncio.wait_for(waiter, 60)
        by_wait = time.perf_counter() - started
        await asyncio.wait_for(sampler, 60)
        assert await prov.poll() is not None
        return by_wait, polled[0]
    finally:
        if client is not None:
            client.stop_channels()
        await km.shutdown_kernel(now=True)


def write_spec(kernels: Path, name: str, argv: list[str], provisioner: str, config: dict[str, Any]) -> None:
    (kernels / name).mkdir(parents=True)
    (kernels / name / "kernel.json").write_text(json.dumps({
        "argv": argv, "env": {}, "display_name": name, "language": "python",
        "metadata": {"kernel_provisioner": {"provisioner_name": provisioner, "config": config}}}))


Results = dict[tuple[str, str], list[tuple[float, float]]]


async def ours(engines: list[str], runs: int, image: str, root: Path) -> Results:
    from jupyter_client.kernelspec import KernelSpecManager

    from kernelfleet.provisioners.broker import ResponseBroker
    from kernelfleet.provisioners.container_argv import container_argv
    from kernelfleet.provisioners.leases import close_all

    os.environ.update(KF_RESPONSE_IP="127.0.0.1", KF_RESPONSE_PORT="0", KF_KUBERNETES_HOST_NETWORK="true",
                      KERNEL_USERNAME="bench")
    kernels = root / "kernels"
    launcher = [sys.executable, "-m", "kernelfleet.launcher", "--kernel-id", "{kernel_id}", "--port-range",
                "{port_range}", "--response-address", "{response_address}", "--public-key", "{public_key}"]
    containers = container_argv(kernel_class_name="ipykernel.ipkernel.IPythonKernel")
    cluster = kube = None
    results: Results = {}
    try:
        write_spec(kernels, "local", launcher, "distributed-provisioner", {})
        if "ssh" in engines:
            sys.path.insert(0, str(ROOT / "tests" / "ssh"))
            from sshd import start_cluster

            cluster = start_cluster(root / "sshd", ("127.0.0.2",))
            write_spec(kernels, "ssh", launcher, "distributed-provisioner",
                       {**cluster.provisioner_config(), "remote_hosts": ["127.0.0.2"]})
        box = {"image_name": image, "network": "host", "memory_limit": "160m"}
        write_spec(kernels, "docker", containers, "docker-provisioner", box)
        write_spec(kernels, "swarm", containers, "docker-swarm-provisioner", box)
        write_spec(kernels, "kubernetes", containers, "kubernetes-provisioner", {"image_name": image})
        if "kubernetes" in engines:
            from kernelfleet.kubelite import KubeLite

            kube = KubeLite()
            await kube.start()
            os.environ["KUBECONFIG"] = str(kube.write_kubeconfig(root / "kubeconfig"))
        ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
        await ResponseBroker.instance()
        for engine in engines:
            for fault in FAULTS[engine]:
                for _ in range(runs):
                    results.setdefault((engine, fault), []).append(await one_run(engine, fault, ksm))
                print(f"  {engine} / {fault}: {results[engine, fault]}", file=sys.stderr)
    finally:
        await close_all()
        if kube is not None:
            await kube.stop()
        broker = ResponseBroker._instances.get(asyncio.get_running_loop())
        if broker is not None:
            await broker.stop()
        if cluster is not None:
            cluster.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", default="local,ssh,docker,swarm,kubernetes")
    parser.add_argument("--image", default=os.environ.get("KF_TEST_IMAGE", "kernelfleet/kernel-py:dev"))
    parser.add_argument("--no-gp", action="store_true")
    parser.add_argument("--gp-probe", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gp_probe:
        asyncio.run(gp_probe(args.gp_probe[0], args.gp_probe[1], int(args.gp_probe[2])))
        return
    sys.path[:0] = [str(HERE), str(ROOT / "tests" / "support")]
    from common import GP_VERSION, median, table

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(ours(engines, args.runs, args.image, Path(tmp)))
    gp = None if args.no_gp or "local" not in engines else gp_local(args.runs)
    rows = [("engine", "fault", "wait median", "wait max", "poll median", "poll max", f"<= {TARGET:g}s")]
    for (engine, fault), values in results.items():
        waits, polls = [v[0] for v in values], [v[1] for v in values]
        rows.append((engine, fault, f"{median(waits):.3f}s", f"{max(waits):.3f}s", f"{median(polls):.3f}s",
                     f"{max(polls):.3f}s", "yes" if max(max(waits), max(polls)) <= TARGET else "NO"))
    if gp is not None:
        rows.append((f"GP {GP_VERSION} local", "kill -9 launcher", "(no event path)", "", f"{median(gp):.3f}s",
                     f"{max(gp):.3f}s", "yes" if max(gp) <= TARGET else "NO"))
    table(rows)
    if gp is not None and ("local", "launcher") in results:
        ours_poll = median([v[1] for v in results["local", "launcher"]])
        print(f"\nlocal kill -9 launcher, poll(): GP/ours = {median(gp) / max(ours_poll, 1e-3):.1f}x")


if __name__ == "__main__":
    main()
