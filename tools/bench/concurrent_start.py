"""Success ratio of N simultaneous kernel starts on one host, beside a port-hungry neighbour, side by side:

  Kernel Fleet's embedded default (distributed-provisioner, localhost, full protocol v2)
  Gateway Provisioners 0.5.0's distributed-provisioner on localhost

Each kernel must come up and execute a cell. Target: Kernel Fleet N/N.
Usage: .venv/bin/python tools/bench/concurrent_start.py [--kernels 30] [--runs 1] [--no-neighbour]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import GP_VERSION, OUR_PYTHON, ensure_gp_venv, table

HERE = Path(__file__).resolve()


async def _one_run(kernel_dir: str, name: str, kernels: int, neighbour: bool, timeout: float) -> dict[str, object]:
    """Runs inside the venv that owns the kernelspec (ours or GP's)."""
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from port_contention import port_hungry_neighbour, start_many

    specs = KernelSpecManager(kernel_dirs=[kernel_dir])

    def manager(index: int) -> AsyncKernelManager:
        return AsyncKernelManager(kernel_name=name, kernel_spec_manager=specs)

    if neighbour:
        async with port_hungry_neighbour():
            outcomes = await start_many(manager, kernels, timeout)
    else:
        outcomes = await start_many(manager, kernels, timeout)
    lost = [o.detail for o in outcomes if not o.ok]
    return {"ok": kernels - len(lost), "lost": lost[:5]}


def measure(python: Path, kernel_dir: Path, name: str, args: argparse.Namespace) -> list[dict[str, object]]:
    # GP refuses to launch for root and runs a bare "python" from PATH: the same user name, its own venv first.
    env = {**os.environ, "KERNEL_USERNAME": "bench", "GP_RESPONSE_IP": "127.0.0.1",
           "PATH": f"{python.parent}:{os.environ['PATH']}"}
    results = []
    for _ in range(args.runs):
        out = subprocess.run(
            [str(python), str(HERE), "--inner", str(kernel_dir), name, "--kernels", str(args.kernels),
             "--timeout", str(args.timeout), *([] if args.neighbour else ["--no-neighbour"])],
            capture_output=True, text=True, env=env,
        )
        if out.returncode:
            raise SystemExit(f"{name}: {out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.splitlines()[-1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernels", type=int, default=30)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds each kernel may take to execute")
    parser.add_argument("--no-neighbour", dest="neighbour", action="store_false")
    parser.add_argument("--inner", nargs=2, metavar=("KERNEL_DIR", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        result = asyncio.run(_one_run(*args.inner, args.kernels, args.neighbour, args.timeout))
        print(json.dumps(result))
        return
    gp_python = ensure_gp_venv()
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp)
        subprocess.run([str(OUR_PYTHON.parent / "jupyter-ssh-spec"), "install", "--prefix", str(prefix),
                        "--kernel-name", "kf", "--launch-timeout", str(int(args.timeout))],
                       check=True, capture_output=True)
        gp_prefix = prefix / "gp"
        subprocess.run([str(gp_python.parent / "jupyter-ssh-spec"), "install", "--prefix", str(gp_prefix),
                        "--kernel-name", "gp", "--remote-hosts", "localhost",
                        "--launch-timeout", str(int(args.timeout))], check=True, capture_output=True)
        ours = measure(OUR_PYTHON, prefix / "share" / "jupyter" / "kernels", "kf", args)
        gp = measure(gp_python, gp_prefix / "share" / "jupyter" / "kernels", "gp", args)
    n = args.kernels
    rows = [("run", "Kernel Fleet", f"GP {GP_VERSION}")]
    for i, (a, b) in enumerate(zip(ours, gp, strict=True), 1):
        rows.append((f"#{i}", f"{a['ok']}/{n}", f"{b['ok']}/{n}"))
    total = n * args.runs
    ok_ours, ok_gp = sum(int(r["ok"]) for r in ours), sum(int(r["ok"]) for r in gp)
    rows.append(("success ratio", f"{ok_ours / total:.1%}", f"{ok_gp / total:.1%}"))
    print(f"{n} simultaneous starts on one host, {'with' if args.neighbour else 'without'} a port-hungry neighbour")
    table(rows)
    for label, results in (("Kernel Fleet", ours), (f"GP {GP_VERSION}", gp)):
        for r in results:
            for detail in r["lost"]:  # type: ignore[union-attr]
                print(f"  {label} lost a kernel: {detail}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()
