"""Response brokers side by side: Kernel Fleet vs Gateway Provisioners 0.5.0 (issue targets in brackets).

  500 simultaneous reports: how many arrive and how long the last one takes      [500/500, <= 0.5 s]
  idle CPU of the broker over 10 s                                                [<= 0.01 % of a core]
  delay one client stalled for 10 s adds to another launch                        [0 ms]

Usage: .venv/bin/python tools/bench/compare_brokers.py [--runs 3] [--count 500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import GP_VERSION, OUR_PYTHON, ensure_gp_venv, median, table

HERE = Path(__file__).resolve().parent


def run(python: Path, impl: str, mode: str, *, count: int = 1, seconds: float = 10.0,
        stall: float = 0.0) -> dict:
    """Run one measurement; for reports, only those arriving within ``seconds`` of the first send count."""
    deadline = seconds
    env = {**os.environ, "GP_RESPONSE_IP": "127.0.0.1", "GP_RESPONSE_PORT": str(20000 + os.getpid() % 20000)}
    wait = seconds if mode == "idle" else seconds + 60
    cmd = [str(python), str(HERE / "broker_server.py"), impl, mode, "--count", str(count), "--seconds", str(wait)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert server.stdout is not None
    info = json.loads(server.stdout.readline())
    began = None
    if mode != "idle":
        kernels = ",".join(info["tokens"]) if impl == "kf" else ",".join(
            f"bench-{i:04d}-{server.pid}" for i in range(count))
        client = subprocess.run([str(OUR_PYTHON), str(HERE / "broker_client.py"), impl, "--kernels", kernels,
                                 "--stall-seconds", str(stall)], input=json.dumps(info) + "\n",
                                capture_output=True, text=True, check=True)
        began = json.loads(client.stdout.splitlines()[0])["began"]
    result = json.loads(server.stdout.readline())
    server.wait(30)
    if began is not None:
        in_time = [t - began for t in result["times"].values() if t - began <= deadline]
        result["received"] = len(in_time)
        result["elapsed"] = max(in_time) if in_time else float("nan")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    gp = ensure_gp_venv()
    rows = [("measure", "Kernel Fleet", f"GP {GP_VERSION}", "target")]

    received: dict[str, list[int]] = {"kf": [], "gp": []}
    elapsed: dict[str, list[float]] = {"kf": [], "gp": []}
    for n in range(args.runs):
        for impl, python in (("kf", OUR_PYTHON), ("gp", gp)):
            r = run(python, impl, "reports", count=args.count, seconds=10)
            received[impl].append(r["received"])
            elapsed[impl].append(r["elapsed"])
            print(f"run {n + 1} {impl}: {r['received']}/{args.count} reports, last after {r['elapsed']:.3f}s",
                  file=sys.stderr)
    rows.append((f"{args.count} simultaneous reports received (worst run)", f"{min(received['kf'])}/{args.count}",
                 f"{min(received['gp'])}/{args.count}", f"{args.count}/{args.count}"))
    rows.append(("  time to the last report (median)", f"{median(elapsed['kf']):.3f}s",
                 f"{median(elapsed['gp']):.3f}s", "<= 0.5s"))

    idle = {impl: run(python, impl, "idle", seconds=10)["idle_cpu_percent"]
            for impl, python in (("kf", OUR_PYTHON), ("gp", gp))}
    rows.append(("idle CPU over 10 s (% of a core)", f"{idle['kf']:.3f}%", f"{idle['gp']:.2f}%", "<= 0.01%"))

    stall = {impl: run(python, impl, "stall", count=1, seconds=15, stall=10.0)["elapsed"]
             for impl, python in (("kf", OUR_PYTHON), ("gp", gp))}
    rows.append(("delay a 10 s stalled client adds", f"{stall['kf'] * 1000:.0f} ms", f"{stall['gp'] * 1000:.0f} ms",
                 "0 ms"))
    table(rows)
    kf_ok = min(received["kf"]) == args.count
    print(f"\nratios: report time GP/ours = {median(elapsed['gp']) / median(elapsed['kf']):.1f}x, "
          f"stall delay GP/ours = {stall['gp'] / max(stall['kf'], 1e-3):.0f}x, all reports received: {kf_ok}")


if __name__ == "__main__":
    main()
