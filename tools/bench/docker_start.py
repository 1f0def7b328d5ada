"""Start-to-first-execute of a Docker kernel: docker-provisioner vs the physical floor, and 20 at once (both ways).

The floor is a bare container of the same image running ipykernel on a connection file mounted from
here, with host networking, created through the same Docker API (aiodocker), so the ratio is what the
provisioner adds: the launcher, the sealed report, the broker and the event follow-up. Each kernel is
timed from the create request until its first ``execute_reply``. Containers are removed afterwards.

    .venv/bin/python tools/bench/docker_start.py [--image kernelfleet/kernel-py:dev] [--runs 5] [--concurrent 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiodocker
from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.kernelspec import KernelSpecManager

from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.container_argv import container_argv
from kernelfleet.provisioners.leases import close_all


async def first_execute(client: AsyncKernelClient, timeout: float = 120) -> None:
    """Run one trivial cell; the time a notebook user waits for their first result.

    No ``wait_for_ready``: its heartbeat check calls a kernel that is still starting dead. The shell
    socket queues the request until the kernel binds, which is exactly when it can first answer.
    """
    msg_id = client.execute("1 + 1", silent=False)
    async with asyncio.timeout(timeout):
        while (reply := await client.get_shell_msg())["parent_header"].get("msg_id") != msg_id:
            pass
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"first execute failed: {reply['content']}")


def unclaimed_ports(count: int = 5) -> dict[str, int]:
    """Free ports below the ephemeral range, for a kernel that binds them only a second or two later.

    Ports that ``write_connection_file`` picks come from the ephemeral range, where, with 20 kernels
    starting on the host network, another client's outgoing connection can take one first and the kernel
    dies on bind: a floor measurement must not lose kernels to that.
    """
    lowest_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randrange(10000, lowest_ephemeral)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in chosen:
            chosen.append(port)
    names = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
    return dict(zip(names, chosen, strict=True))


async def bare_run(docker: aiodocker.Docker, image: str, workdir: Path) -> float:
    """ipykernel alone in a container of the same image: the floor no provisioner can beat."""
    conn_file = workdir / f"bare-{uuid.uuid4()}.json"
    write_connection_file(str(conn_file), ip="127.0.0.1", **unclaimed_ports())
    conn_file.chmod(0o644)  # the kernel runs as 1000:100
    config = {
        "Image": image,
        "Cmd": ["python", "-m", "ipykernel_launcher", "-f", "/run/kernel/connection.json"],
        "User": "1000:100",
        "Labels": {"app": "kernelfleet-bench"},
        "HostConfig": {
            "NetworkMode": "host",
            "Init": True,
            "Mounts": [{"Type": "bind", "Source": str(conn_file), "Target": "/run/kernel/connection.json",
                        "ReadOnly": True}],
        },
    }
    client = AsyncKernelClient(connection_file=str(conn_file))
    client.load_connection_file()
    started = time.perf_counter()
    container = await docker.containers.create(config)
    try:
        await container.start()
        client.start_channels()
        await first_execute(client)
        return time.perf_counter() - started
    finally:
        client.stop_channels()
        await container.delete(force=True)
        conn_file.unlink(missing_ok=True)


def kernelspec(kernels_dir: Path, image: str) -> str:
    spec_dir = kernels_dir / "bench_docker"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": container_argv(),
        "display_name": "bench docker",
        "language": "python",
        "metadata": {
            "kernel_provisioner": {
                "provisioner_name": "docker-provisioner",
                "config": {"image_name": image, "network": "host", "launch_timeout": 120},
            }
        },
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return "bench_docker"


async def provisioned(kernels_dir: Path, name: str) -> tuple[float, float]:
    """(start_kernel returned, first execute done), both from the start request."""
    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]))
    started = time.perf_counter()
    await km.start_kernel()
    launched = time.perf_counter() - started
    client = km.client()
    client.start_channels()
    try:
        await first_execute(client)
        return launched, time.perf_counter() - started
    finally:
        client.stop_channels()
        await km.shutdown_kernel(now=True)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=os.environ.get("KF_TEST_IMAGE", "kernelfleet/kernel-py:dev"))
    parser.add_argument("--runs", type=int, default=5, help="sequential starts of each kind")
    parser.add_argument("--concurrent", type=int, default=20, help="provisioned kernels started at once")
    args = parser.parse_args()
    os.environ.setdefault("KF_RESPONSE_IP", "127.0.0.1")
    os.environ.setdefault("KF_RESPONSE_PORT", "0")

    docker = aiodocker.Docker()
    try:
        await docker.images.inspect(args.image)
    except aiodocker.DockerError as err:
        print(f"docker_start: image {args.image} unavailable ({err.message}); run tools/build-images", file=sys.stderr)
        await docker.close()
        return 1
    await ResponseBroker.instance()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        kernels_dir = workdir / "kernels"
        name = kernelspec(kernels_dir, args.image)
        # one unmeasured start of each kind warms the page cache and Docker's image layers
        await bare_run(docker, args.image, workdir)
        await provisioned(kernels_dir, name)

        bare, launched, first = [], [], []
        for _ in range(args.runs):  # interleaved, so drifting machine load hits both alike
            bare.append(await bare_run(docker, args.image, workdir))
            up, done = await provisioned(kernels_dir, name)
            launched.append(up)
            first.append(done)

        started = time.perf_counter()
        bare_together = await asyncio.gather(*(bare_run(docker, args.image, workdir) for _ in range(args.concurrent)))
        bare_wall = time.perf_counter() - started
        started = time.perf_counter()
        together = await asyncio.gather(*(provisioned(kernels_dir, name) for _ in range(args.concurrent)))
        wall = time.perf_counter() - started

    await close_all()
    await docker.close()

    result: dict[str, Any] = {
        "image": args.image,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "bare_docker_run_first_execute_s": summary(bare),
        "provisioner_start_kernel_s": summary(launched),
        "provisioner_first_execute_s": summary(first),
        "ratio_median": statistics.median(first) / statistics.median(bare),
        "concurrent": {
            "kernels": args.concurrent,
            "wall_s": wall,
            "first_execute_s": summary([done for _, done in together]),
            "bare_wall_s": bare_wall,
            "bare_first_execute_s": summary(bare_together),
            "ratio_wall": wall / bare_wall,
        },
    }
    print(f"bare docker run -> first execute : median {result['bare_docker_run_first_execute_s']['median']:.2f}s "
          f"(min {min(bare):.2f}, max {max(bare):.2f}) over {args.runs}")
    print(f"docker-provisioner start_kernel  : median {statistics.median(launched):.2f}s")
    print(f"docker-provisioner first execute : median {statistics.median(first):.2f}s "
          f"(min {min(first):.2f}, max {max(first):.2f})")
    print(f"ratio provisioner / bare (median): {result['ratio_median']:.2f}")
    print(f"{args.concurrent} concurrent starts           : all executed after {wall:.2f}s "
          f"(per kernel median {result['concurrent']['first_execute_s']['median']:.2f}s, "
          f"max {result['concurrent']['first_execute_s']['max']:.2f}s)")
    print(f"{args.concurrent} concurrent bare runs         : all executed after {bare_wall:.2f}s "
          f"(ratio provisioner / bare {wall / bare_wall:.2f})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
