"""Memory per Python kernel: the launcher's share next to the kernel's, as PSS, side by side in one run.

  Kernel Fleet   our embedded default (``jupyter ssh-spec install``, localhost): ``python -m kernelfleet.launcher``,
                 which after the report re-executes itself as the small supervisor, plus the kernel process
  GP 0.5.0       Gateway Provisioners' distributed-provisioner on localhost: launch_ipykernel.py is the kernel
                 itself, with its comm listener forked from it
  bare           jupyter_client's LocalProvisioner and ``ipykernel_launcher``: no launcher at all (the floor)

PSS (``/proc/PID/smaps_rollup``), not RSS: pages shared between processes (the interpreter, libraries, and
for GP the pages its forked listener shares with its kernel) are divided among the processes that map them,
so the figures add up to what the kernels really cost. For each side N kernels run at once (started through
jupyter_client's AsyncKernelManager, each answering a first execute) while their processes are measured;
each kernel reports its own pid, and every other process of its launch (the launcher's tree, the kernel's
children) is the launcher's share. Sides run one after the other, so they never share pages with each other.

Target (issue 15, section 3): the launcher's share <= 8 MB per kernel.
Usage: .venv/bin/python tools/bench/launcher_memory.py [--kernels 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET_MB = 8.0
SHUTDOWN_TIMEOUT = 60.0


# ------------------------------------------------------------------ the host: runs inside the side's own venv


def pss_kb(pid: int) -> int:
    """Proportional set size of one process, in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


async def host(kernel_dir: str, name: str, count: int) -> list[dict[str, Any]]:
    """Start ``count`` kernels of ``name``, measure each launch's processes, shut them down."""
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from launch_latency import children  # every descendant of a pid

    ksm = KernelSpecManager(kernel_dirs=[kernel_dir])
    managers, clients = [], []
    started: set[int] = set()  # every process of every launch, SIGKILLed at the end whatever the provisioner did
    try:
        for _ in range(count):
            km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=ksm)
            managers.append(km)
            await km.start_kernel()
            client = km.client()
            client.start_channels()
            clients.append(client)
            await client.wait_for_ready(timeout=120)
        measured = []
        for km, client in zip(managers, clients, strict=True):
            kernel_pid = await ask_pid(client)
            root = launcher_root(km) or kernel_pid
            launch = ({root} | children(root) | children(kernel_pid)) - {kernel_pid, os.getpid()}
            started |= launch | {kernel_pid}
            measured.append({"kernel": pss_kb(kernel_pid), "launcher": sum(pss_kb(p) for p in launch),
                             "launcher_processes": len(launch)})
        return measured
    finally:
        for client in clients:
            client.stop_channels()
        # GP 0.5.0's local launches outlive its shutdown (they are re-parented to init): end them all first.
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*(km.shutdown_kernel(now=True) for km in managers),
                                              return_exceptions=True), SHUTDOWN_TIMEOUT)


async def ask_pid(client: Any) -> int:
    msg_id = client.execute("import os; os.getpid()")
    while True:
        msg = await client.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_result":
            return int(msg["content"]["data"]["text/plain"])


def launcher_root(km: Any) -> int | None:
    """The process the provisioner started (our launcher, GP's launch_ipykernel.py, the bare kernel)."""
    for attr in ("local_process", "local_proc", "process"):
        proc = getattr(km.provisioner, attr, None)
        if proc is not None and getattr(proc, "pid", None):
            return int(proc.pid)
    return None


# ------------------------------------------------------------------ the driver


def measure(python: Path, kernel_dir: Path, name: str, count: int) -> list[dict[str, Any]]:
    # GP refuses to launch for root (CI runs as root): every side gets the same ordinary user name;
    # GP's kernelspec runs a bare "python" from PATH: let it find its own venv's.
    env = {**os.environ, "KERNEL_USERNAME": "bench", "GP_RESPONSE_IP": "127.0.0.1", "KF_RESPONSE_IP": "127.0.0.1",
           "PATH": f"{python.parent}:{os.environ['PATH']}"}
    out = subprocess.run([str(python), str(HERE / "launcher_memory.py"), "--host", str(kernel_dir), name,
                          str(count)], capture_output=True, text=True, env=env, timeout=600)
    if out.returncode:
        raise SystemExit(f"{name}: {out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def mb(kib: float) -> str:
    return f"{kib / 1024:.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", type=int, default=5, help="kernels running at once per side (default 5)")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    parser.add_argument("--host", nargs=3, metavar=("KERNEL_DIR", "NAME", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.host:
        kernel_dir, name, count = args.host
        print(json.dumps(asyncio.run(host(kernel_dir, name, int(count)))))
        return 0

    sys.path.insert(0, str(HERE))
    from common import GP_VERSION, ensure_gp_venv, install_python_specs, median, table

    gp_python = ensure_gp_venv()
    with tempfile.TemporaryDirectory(prefix="kf-mem-bench-") as tmp:
        sides = install_python_specs(Path(tmp), gp_python)
        results = {name: measure(python, kernels, name, args.kernels) for name, (python, kernels) in sides.items()}
    if args.json:
        print(json.dumps(results))
        return 0
    share = {name: median([m["launcher"] for m in runs]) for name, runs in results.items()}
    kernel = {name: median([m["kernel"] for m in runs]) for name, runs in results.items()}
    procs = {name: median([m["launcher_processes"] for m in runs]) for name, runs in results.items()}
    print(f"PSS per kernel, median of {args.kernels} kernels running at once")
    table([
        ("", "Kernel Fleet", f"GP {GP_VERSION}", "bare ipykernel", "target"),
        ("launcher's share", mb(share["kf"]), mb(share["gp"]), mb(share["bare"]), f"<= {TARGET_MB:.0f} MB"),
        ("  its processes", f"{procs['kf']:g}", f"{procs['gp']:g}", f"{procs['bare']:g}", ""),
        ("kernel process", mb(kernel["kf"]), mb(kernel["gp"]), mb(kernel["bare"]), ""),
        ("total per kernel", mb(share["kf"] + kernel["kf"]), mb(share["gp"] + kernel["gp"]),
         mb(share["bare"] + kernel["bare"]), ""),
    ])
    print(f"\nratios: launcher share GP/ours = {share['gp'] / max(share['kf'], 1):.2f}x; total per kernel "
          f"ours/bare = {(share['kf'] + kernel['kf']) / kernel['bare']:.2f}x")
    return 0 if share["kf"] <= TARGET_MB * 1024 else 1


if __name__ == "__main__":
    sys.exit(main())
