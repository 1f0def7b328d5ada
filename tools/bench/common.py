"""Shared bits of the side-by-side benchmarks: where the reference implementation's venv lives, timing a kernel's
start to its first execute, and printing."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager

ROOT = Path(__file__).resolve().parents[2]
OUR_PYTHON = Path(sys.executable)
GP_VENV = Path(os.environ.get("KF_GP_VENV", ROOT / ".cache" / "gp-venv"))
GP_PYTHON = GP_VENV / "bin" / "python"
GP_VERSION = "0.5.0"


def ensure_gp_venv() -> Path:
    """Gateway Provisioners in its own venv, made on first use (PyPI), so both run side by side."""
    if not GP_PYTHON.exists():
        print(f"creating {GP_VENV} with gateway-provisioners=={GP_VERSION} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(GP_VENV)], check=True)
        subprocess.run([str(GP_PYTHON), "-m", "pip", "install", "-q", f"gateway-provisioners=={GP_VERSION}",
                        "ipykernel"], check=True)
    return GP_PYTHON


async def start_to_first_execute(ksm: KernelSpecManager, name: str, *, now: bool = True, timeout: float = 60) -> float:
    """Seconds from ``start_kernel`` of kernelspec ``name`` to the reply of its first cell; the kernel is shut down.
    ``timeout`` bounds each wait for a shell message (a cold Toree needs minutes on a loaded host)."""
    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=ksm)
    started = time.perf_counter()
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        msg_id = kc.execute("1 + 1")
        while (await kc.get_shell_msg(timeout=timeout))["parent_header"].get("msg_id") != msg_id:
            pass
        return time.perf_counter() - started
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=now)


def install_python_specs(prefix: Path, gp_python: Path) -> dict[str, tuple[Path, Path]]:
    """The three Python kernelspecs the side-by-side benchmarks compare, under ``prefix``: ours (``kf``, the
    embedded default), a bare ipykernel (``bare``, the floor) and GP's distributed-provisioner on localhost
    (``gp``). Returns each one's interpreter and kernels directory."""
    kernels = prefix / "share" / "jupyter" / "kernels"
    subprocess.run([str(OUR_PYTHON.parent / "jupyter-ssh-spec"), "install", "--prefix", str(prefix),
                    "--kernel-name", "kf"], check=True, capture_output=True)
    bare = kernels / "bare"
    bare.mkdir(parents=True)
    (bare / "kernel.json").write_text(json.dumps({
        "argv": [str(OUR_PYTHON), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "bare", "language": "python"}))
    gp_prefix = prefix / "gp"
    subprocess.run([str(gp_python.parent / "jupyter-ssh-spec"), "install", "--prefix", str(gp_prefix),
                    "--kernel-name", "gp", "--remote-hosts", "localhost"], check=True, capture_output=True)
    return {"kf": (OUR_PYTHON, kernels), "bare": (OUR_PYTHON, kernels),
            "gp": (gp_python, gp_prefix / "share" / "jupyter" / "kernels")}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
