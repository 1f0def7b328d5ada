"""yarn-provisioner against yarnlite: what the provisioner adds over the RM's own scheduling, and how soon a failure
is seen.

Three figures, each against a floor measured in the same run:
1. start-to-first-execute of a Python kernel submitted over REST to an RM that takes ``--schedule-delay`` seconds
   to place the AM (its own scheduling time), minus the same launcher started as a local process
   (distributed-provisioner, the floor) and minus that delay: the provisioner's overhead (target ≤ 0.2 s);
   and, exactly, the time from ``start_kernel`` until the RM holds the application (pre_launch, the broker, the
   REST calls), the provisioner's own part before YARN schedules anything;
2. an AM that runs ``--fail-after`` seconds and exits 1: the time from the RM marking the app FAILED to the
   launch failing (target ≤ 2 s);
3. the standby RM first in the list: requests it answered during a whole launch (target: one).

Usage: .venv/bin/python tools/bench/yarn_launch.py [--runs 5] [--schedule-delay 0.5] [--fail-after 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, start_to_first_execute, table

from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.leases import close_all
from kernelfleet.yarnlite import Cluster, ResourceManagerPair

LAUNCHER = [sys.executable, "-m", "kernelfleet.launcher", "--kernel-id", "{kernel_id}", "--port-range",
            "{port_range}", "--response-address", "{response_address}", "--public-key", "{public_key}"]


def write_spec(kernels: Path, name: str, provisioner: str, config: dict[str, object],
               argv: list[str] | None = None) -> None:
    (kernels / name).mkdir(parents=True)
    spec = {"argv": argv or LAUNCHER, "env": {}, "display_name": name, "language": "python",
            "metadata": {"kernel_provisioner": {"provisioner_name": provisioner, "config": config}}}
    (kernels / name / "kernel.json").write_text(json.dumps(spec))


async def to_submission(ksm: KernelSpecManager, cluster: Cluster) -> float:
    """Seconds from ``start_kernel`` to the RM holding the application (pre_launch, the broker, two REST calls):
    the part of the launch before YARN's own scheduling that is the provisioner's alone."""
    while not cluster.submitted.empty():
        cluster.submitted.get_nowait()
    km = AsyncKernelManager(kernel_name="yarn", kernel_spec_manager=ksm)
    started = time.time()
    launch = asyncio.ensure_future(km.start_kernel())
    app = await cluster.submitted.get()
    elapsed = app.started / 1000 - started
    await launch
    await km.shutdown_kernel(now=True)
    return elapsed


async def failure_seen(ksm: KernelSpecManager, cluster: Cluster) -> float:
    """Seconds from the app's FAILED (the RM's own finish time) to the launch's LaunchError."""
    km = AsyncKernelManager(kernel_name="yarn_fail", kernel_spec_manager=ksm)
    try:
        await km.start_kernel()
    except LaunchError:
        seen = time.time()
    else:
        raise AssertionError("the launch of an AM that exits 1 succeeded")
    app = max(cluster.apps.values(), key=lambda a: a.started)
    assert app.state == "FAILED", app.state
    return seen - app.finished / 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--schedule-delay", type=float, default=0.5)
    parser.add_argument("--fail-after", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp) / "yarn", schedule_delay=args.schedule_delay)
        async with ResourceManagerPair(cluster) as pair:
            kernels = Path(tmp) / "kernels"
            rest = {"yarn_endpoint": pair.rm1.endpoint, "submission": "rest"}
            write_spec(kernels, "local", "distributed-provisioner", {})
            write_spec(kernels, "yarn", "yarn-provisioner", rest)
            write_spec(kernels, "yarn_standby_first", "yarn-provisioner",
                       {**rest, "yarn_endpoint": pair.rm2.endpoint, "alt_yarn_endpoint": pair.rm1.endpoint})
            write_spec(kernels, "yarn_fail", "yarn-provisioner", {**rest, "launch_timeout": 60},
                       argv=["/bin/sh", "-c", f"sleep {args.fail_after}; exit 1"])
            ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
            results: dict[str, list[float]] = {"local": [], "yarn": [], "submission": [], "failure": []}
            await start_to_first_execute(ksm, "local")  # warm-up: imports, the broker's key
            await start_to_first_execute(ksm, "yarn")
            for _ in range(args.runs):  # interleaved, so load changes hit both alike
                for name in ("local", "yarn"):
                    results[name].append(await start_to_first_execute(ksm, name))
                results["submission"].append(await to_submission(ksm, cluster))
                results["failure"].append(await failure_seen(ksm, cluster))
            before = pair.rm2.requests
            await start_to_first_execute(ksm, "yarn_standby_first")
            standby_requests = pair.rm2.requests - before
        await cluster.close()
    await close_all()
    rows = [("measure", "median s", "min s", "max s", "runs")]
    labels = {"local": "local process (floor)", "yarn": f"YARN REST, RM scheduling {args.schedule_delay:g} s",
              "submission": "start_kernel to the app held by the RM",
              "failure": f"failure seen after RM's FAILED (AM ran {args.fail_after:g} s)"}
    for name, values in results.items():
        rows.append((labels[name], f"{median(values):.3f}", f"{min(values):.3f}", f"{max(values):.3f}",
                     str(len(values))))
    table(rows)
    overhead = median(results["yarn"]) - median(results["local"]) - args.schedule_delay
    print(f"provisioner overhead over the RM's scheduling (median): {overhead:+.3f} s (target: <= 0.2 s)")
    print(f"start_kernel to submitted (median): {median(results['submission']):.3f} s")
    print(f"failure seen (median / max): {median(results['failure']):.3f} / {max(results['failure']):.3f} s "
          "(target: <= 2 s)")
    print(f"standby RM first in the list: {standby_requests} request(s) answered by it (target: 1)")
    print(json.dumps({name: [round(v, 4) for v in values] for name, values in results.items()}))


if __name__ == "__main__":
    asyncio.run(main())
