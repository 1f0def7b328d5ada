"""How fast ends are noticed and carried out: the timing targets the tests used to assert, measured here.

  SIGTERM to a local launcher  -> launcher and kernel gone        (target 1 s; floor: SIGTERM to a bare ipykernel)
  launcher that exits at once  -> start_kernel raises LaunchError  (target 1.5 s; floor: the same process's own exit)
  Docker image that is missing -> start_kernel raises LaunchError  (target 5 s; floor: Docker's 404 for the image)

Tests assert that each happens (generous deadlines); this prints the medians, the targets and the ratio to the floor
measured in the same run. Usage: .venv/bin/python tools/bench/stop_latency.py [--runs 5] [--no-docker]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiodocker
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, table

from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.container_argv import container_argv
from kernelfleet.provisioners.leases import close_all

LAUNCHER = [sys.executable, "-m", "kernelfleet.launcher", "--kernel-id", "{kernel_id}", "--port-range", "{port_range}",
            "--response-address", "{response_address}", "--public-key", "{public_key}"]
EXITS = [sys.executable, "-c", "import sys; sys.exit(3)"]
MISSING_IMAGE = "kernelfleet/no-such-image:none"


def write_spec(kernels: Path, name: str, argv: list[str], provisioner: str | None, config: dict[str, object]) -> None:
    (kernels / name).mkdir(parents=True)
    metadata = {"kernel_provisioner": {"provisioner_name": provisioner, "config": config}} if provisioner else {}
    (kernels / name / "kernel.json").write_text(json.dumps({
        "argv": argv, "env": {}, "display_name": name, "language": "python", "metadata": metadata}))


async def until_gone(pids: list[int]) -> None:
    """Until every pid has exited: a pidfd turns readable at the exit (no polling)."""
    loop = asyncio.get_running_loop()
    waits = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        done = loop.create_future()
        loop.add_reader(fd, lambda d=done: d.done() or d.set_result(None))
        waits.append((fd, done))
    for fd, done in waits:
        await done
        loop.remove_reader(fd)
        os.close(fd)


async def sigterm_launcher(ksm: KernelSpecManager) -> float:
    km = AsyncKernelManager(kernel_name="kf", kernel_spec_manager=ksm)
    await km.start_kernel()
    try:
        launcher, kernel = km.provisioner.local_process.pid, km.provisioner.kernel_pgid
        started = time.perf_counter()
        os.kill(launcher, signal.SIGTERM)
        await until_gone([launcher, kernel])
        return time.perf_counter() - started
    finally:
        await km.shutdown_kernel(now=True)


async def sigterm_bare_kernel(ksm: KernelSpecManager) -> float:
    km = AsyncKernelManager(kernel_name="bare", kernel_spec_manager=ksm)
    await km.start_kernel()
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)  # as with the launcher: the kernel is up when the signal comes
    client.stop_channels()
    try:
        pid = km.provisioner.pid
        started = time.perf_counter()
        os.kill(pid, signal.SIGTERM)
        await until_gone([pid])
        return time.perf_counter() - started
    finally:
        await km.shutdown_kernel(now=True)


async def failed_launch(ksm: KernelSpecManager, name: str) -> float:
    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=ksm)
    started = time.perf_counter()
    try:
        await km.start_kernel()
    except LaunchError:
        return time.perf_counter() - started
    await km.shutdown_kernel(now=True)
    raise SystemExit(f"kernelspec {name} started a kernel; it should have failed")


async def bare_exit() -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*EXITS)
    await proc.wait()
    return time.perf_counter() - started


async def docker_404() -> float:
    async with aiodocker.Docker() as docker:
        started = time.perf_counter()
        try:
            await docker.images.inspect(MISSING_IMAGE)
        except aiodocker.DockerError:
            return time.perf_counter() - started
    raise SystemExit(f"{MISSING_IMAGE} exists; remove it")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-docker", action="store_true")
    args = parser.parse_args()
    os.environ.update(KF_RESPONSE_IP="127.0.0.1", KF_RESPONSE_PORT="0")
    with tempfile.TemporaryDirectory() as tmp:
        kernels = Path(tmp) / "kernels"
        write_spec(kernels, "kf", LAUNCHER, "distributed-provisioner", {})
        write_spec(kernels, "bare", [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], None, {})
        write_spec(kernels, "exits", EXITS, "distributed-provisioner", {"launch_timeout": 300})
        write_spec(kernels, "missing", container_argv(), "docker-provisioner",
                   {"image_name": MISSING_IMAGE, "network": "host", "launch_timeout": 300})
        ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
        rows = [("what", "median s", "floor s", "ratio", "target s")]
        measured = {"sigterm": ([], [], 1.0), "early exit": ([], [], 1.5)}
        if not args.no_docker:
            measured["missing image"] = ([], [], 5.0)
        await sigterm_launcher(ksm)  # warm-up: imports, the broker's key
        for _ in range(args.runs):  # interleaved, so load changes hit measure and floor alike
            measured["sigterm"][0].append(await sigterm_launcher(ksm))
            measured["sigterm"][1].append(await sigterm_bare_kernel(ksm))
            measured["early exit"][0].append(await failed_launch(ksm, "exits"))
            measured["early exit"][1].append(await bare_exit())
            if not args.no_docker:
                measured["missing image"][0].append(await failed_launch(ksm, "missing"))
                measured["missing image"][1].append(await docker_404())
        await close_all()
        broker = ResponseBroker._instances.get(asyncio.get_running_loop())
        if broker is not None:
            await broker.stop()
    labels = {"sigterm": "SIGTERM to launcher -> all gone", "early exit": "launcher exits -> LaunchError",
              "missing image": "missing image -> LaunchError"}
    for key, (values, floor, target) in measured.items():
        ours, base = median(values), median(floor)
        rows.append((labels[key], f"{ours:.3f}", f"{base:.3f}", f"{ours / base:.1f}x",
                     f"{target:g} ({'met' if ours <= target else 'MISSED'})"))
    table(rows)


if __name__ == "__main__":
    asyncio.run(main())
