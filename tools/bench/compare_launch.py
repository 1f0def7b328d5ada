"""Start-to-first-execute and shutdown linger, side by side:

  Kernel Fleet's embedded default (distributed-provisioner, localhost, full protocol v2)
  a bare local ipykernel (jupyter_client's LocalProvisioner: the floor)
  Gateway Provisioners 0.5.0's distributed-provisioner on localhost

Targets: overhead over bare ipykernel <= 0.15 s; processes gone <= 0.5 s after shutdown.
Usage: .venv/bin/python tools/bench/compare_launch.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import GP_VERSION, ensure_gp_venv, install_python_specs, median, table

HERE = Path(__file__).resolve().parent


def measure(python: Path, kernel_dir: Path, name: str, runs: int) -> dict[str, list[float]]:
    # GP refuses to launch for root (CI runs as root): both get the same ordinary user name
    # GP's kernelspec runs a bare "python" from PATH: let it find its own venv's
    env = {**os.environ, "KERNEL_USERNAME": "bench", "GP_RESPONSE_IP": "127.0.0.1",
           "PATH": f"{python.parent}:{os.environ['PATH']}"}
    out = subprocess.run([str(python), str(HERE / "launch_latency.py"), "--kernel-name", name, "--kernel-dir",
                          str(kernel_dir), "--runs", str(runs)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{name}: {out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    gp_python = ensure_gp_venv()
    with tempfile.TemporaryDirectory() as tmp:
        specs = install_python_specs(Path(tmp), gp_python)
        results = {name: measure(python, kernels, name, args.runs) for name, (python, kernels) in specs.items()}
    ready = {k: median(v["ready"]) for k, v in results.items()}
    linger = {k: median(v["linger"]) for k, v in results.items()}
    worst_linger = {k: max(v["linger"]) for k, v in results.items()}
    table([
        ("median of runs", "Kernel Fleet", "bare ipykernel", f"GP {GP_VERSION}", "target"),
        ("start to first execute", f"{ready['kf']:.3f}s", f"{ready['bare']:.3f}s", f"{ready['gp']:.3f}s", ""),
        ("  overhead over bare", f"+{ready['kf'] - ready['bare']:.3f}s", "0", f"+{ready['gp'] - ready['bare']:.3f}s",
         "<= +0.15s"),
        ("processes gone after shutdown", f"{linger['kf']:.3f}s", f"{linger['bare']:.3f}s", f"{linger['gp']:.3f}s",
         "<= 0.5s"),
        ("  worst run", f"{worst_linger['kf']:.3f}s", f"{worst_linger['bare']:.3f}s", f"{worst_linger['gp']:.3f}s",
         ""),
    ])
    print(f"\nratios: start GP/ours = {ready['gp'] / ready['kf']:.2f}x, linger GP/ours = "
          f"{linger['gp'] / max(linger['kf'], 1e-3):.1f}x")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
