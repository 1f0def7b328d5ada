"""Start-to-first-execute over SSH, side by side:

  Kernel Fleet distributed-provisioner on localhost (local process, no SSH: the floor)
  Kernel Fleet distributed-provisioner on an SSH host (asyncssh in-process, connection reused)
  Gateway Provisioners 0.5.0's distributed-provisioner to the same sshd (paramiko, a connection per launch)

The "host" is a real sshd on 127.0.0.2 started for the run (tests/ssh/sshd.py: generated keys, nothing
of the system's touched); GP gets password-less root SSH through a private HOME holding the same key
and known_hosts. Each variant runs tools/bench/launch_latency.py inside the venv that owns it.
The machine may be shared: variants are interleaved over --rounds so load drifts hit all of them alike.
Usage: .venv/bin/python tools/bench/ssh_start.py [--runs 3] [--rounds 2] [--no-gp]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import GP_VERSION, OUR_PYTHON, ensure_gp_venv, median, table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HOST = "127.0.0.2"


def measure(python: Path, kernel_dir: Path, name: str, runs: int, env: dict[str, str]) -> dict[str, list[float]]:
    out = subprocess.run([str(python), str(HERE / "launch_latency.py"), "--kernel-name", name, "--kernel-dir",
                          str(kernel_dir), "--runs", str(runs)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{name}: {out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def write_spec(kernels: Path, name: str, argv: list[str], config: dict[str, object]) -> None:
    spec = kernels / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": argv, "display_name": name, "language": "python", "env": {},
        "metadata": {"kernel_provisioner": {"provisioner_name": "distributed-provisioner", "config": config}},
    }))


async def handshake_seconds(cluster: object, runs: int) -> float:
    """A new asyncssh connection (what the first kernel on a host pays once)."""
    from kernelfleet.provisioners.ssh.connections import SSHSettings, open_connection

    settings = SSHSettings(user="root", port=cluster.port, key_files=(str(cluster.client_key),),  # type: ignore[attr-defined]
                           known_hosts=str(cluster.known_hosts))  # type: ignore[attr-defined]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        conn = await open_connection(HOST, settings)
        times.append(time.perf_counter() - started)
        conn.close()
        await conn.wait_closed()
    return median(times)


def gp_home(root: Path, cluster: object) -> Path:
    """A HOME where paramiko finds the client key and known_hosts (GP reads ~/.ssh only)."""
    home = root / "gp-home"
    ssh = home / ".ssh"
    ssh.mkdir(parents=True)
    shutil.copy(cluster.client_key, ssh / "id_ed25519")  # type: ignore[attr-defined]
    shutil.copy(cluster.known_hosts, ssh / "known_hosts")  # type: ignore[attr-defined]
    return home


def gp_variant(root: Path, cluster: object) -> tuple[Path, Path, str, dict[str, str]]:
    """GP's own ssh kernelspec for the host, run by GP's venv python on the host too."""
    gp_python = ensure_gp_venv()
    gp_prefix = root / "gp"
    subprocess.run([str(gp_python.parent / "jupyter-ssh-spec"), "install", "--prefix", str(gp_prefix),
                    "--kernel-name", "gp_ssh", "--remote-hosts", HOST], check=True, capture_output=True)
    gp_kernels = gp_prefix / "share" / "jupyter" / "kernels"
    spec_file = gp_kernels / "gp_ssh" / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["argv"][0] = str(gp_python)  # over SSH "python" would be the host's PATH, not GP's venv
    spec_file.write_text(json.dumps(spec))
    gp_env = {**os.environ, "HOME": str(gp_home(root, cluster)), "KERNEL_USERNAME": "bench",
              "GP_RESPONSE_IP": "127.0.0.1", "GP_SSH_PORT": str(cluster.port), "GP_REMOTE_USER": "root"}  # type: ignore[attr-defined]
    return gp_python, gp_kernels, "gp_ssh", gp_env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3, help="measured runs per variant and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-gp", action="store_true", help="skip Gateway Provisioners")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests" / "ssh"))
    from sshd import start_cluster

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cluster = start_cluster(root / "sshd", (HOST,))
        try:
            kernels = root / "kernels"
            argv = [str(OUR_PYTHON), "-m", "kernelfleet.launcher", "--kernel-id", "{kernel_id}", "--port-range",
                    "{port_range}", "--response-address", "{response_address}", "--public-key", "{public_key}"]
            write_spec(kernels, "kf_local", argv, {})
            write_spec(kernels, "kf_ssh", argv, {**cluster.provisioner_config(), "remote_hosts": [HOST]})
            env = {**os.environ, "KERNEL_USERNAME": "bench", "KF_RESPONSE_IP": "127.0.0.1"}
            variants = {
                "local": (OUR_PYTHON, kernels, "kf_local", env),
                "ssh": (OUR_PYTHON, kernels, "kf_ssh", env),
            }
            if not args.no_gp:
                variants["gp"] = gp_variant(root, cluster)
            results: dict[str, dict[str, list[float]]] = {k: {"ready": [], "linger": []} for k in variants}
            for _ in range(args.rounds):
                for key, (python, kdir, name, venv) in variants.items():
                    measured = measure(python, kdir, name, args.runs, venv)
                    for metric, values in measured.items():
                        results[key][metric] += values
            handshake = asyncio.run(handshake_seconds(cluster, 3))
        finally:
            cluster.stop()
    ready = {k: median(v["ready"]) for k, v in results.items()}
    linger = {k: median(v["linger"]) for k, v in results.items()}
    header = ["median of runs", "KF local", "KF over SSH"] + ([f"GP {GP_VERSION} over SSH"] if "gp" in ready else [])
    rows = [tuple(header),
            ("start to first execute", *(f"{ready[k]:.3f}s" for k in ready)),
            ("  over the local path", *(f"{ready[k] - ready['local']:+.3f}s" for k in ready)),
            ("shutdown until processes gone", *(f"{linger[k]:.3f}s" for k in linger))]
    table(rows)
    print(f"\nasyncssh handshake to a new host (paid once per host and loop): {handshake:.3f}s")
    print(f"ratios: KF ssh/local = {ready['ssh'] / ready['local']:.2f}x", end="")
    if "gp" in ready:
        print(f", GP ssh / KF ssh = {ready['gp'] / ready['ssh']:.2f}x", end="")
    print()


if __name__ == "__main__":
    main()
