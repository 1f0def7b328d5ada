"""What CurveZMQ transport encryption costs: at kernel start and per message round trip, disabled vs required.

Both policies run in the same process, alternating start by start, on the embedded default kernelspec
(the real launcher, broker and ipykernel; `jupyter ssh-spec install` writes it, with
metadata.supported_encryption). Per start: seconds from start_kernel to the first kernel_info reply.
Per kernel: round trips of kernel_info (a small shell message), of a cell printing 1 KiB, and of a cell
returning 1 MiB (where the cipher's throughput shows). Prints a table and, with --json, one JSON line.

    .venv/bin/python tools/bench/transport_encryption.py --starts 5 --round-trips 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, table

POLICIES = ("disabled", "required")
CELLS = {"print 1 KiB": "print('x' * 1024)", "return 1 MiB": "'y' * (1 << 20)"}


async def round_trip(client: AsyncKernelClient, code: str | None) -> float:
    """One request and its reply on shell (execute also waits for idle on iopub, as a front end does)."""
    started = time.perf_counter()
    if code is None:
        await client.kernel_info(reply=True, timeout=30)
        return time.perf_counter() - started
    msg_id = client.execute(code)
    while True:
        msg = await client.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["content"].get("execution_state") == "idle":
            break
    while (await client.get_shell_msg(timeout=30))["parent_header"].get("msg_id") != msg_id:
        pass
    return time.perf_counter() - started


async def one_kernel(kernels: Path, policy: str, round_trips: int) -> dict[str, object]:
    km = AsyncKernelManager(kernel_name="bench_curve", transport_encryption=policy,
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    started = time.perf_counter()
    await km.start_kernel()
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        start = time.perf_counter() - started
        assert ("curve_publickey" in km.get_connection_info()) == (policy == "required")
        samples: dict[str, list[float]] = {"kernel_info": []}
        for _ in range(round_trips):
            samples["kernel_info"].append(await round_trip(client, None))
        for label, code in CELLS.items():
            count = round_trips if "KiB" in label else max(5, round_trips // 20)
            samples[label] = [await round_trip(client, code) for _ in range(count)]
    finally:
        client.stop_channels()
        await km.shutdown_kernel(now=True)
    return {"start": start, "samples": samples}


async def run(kernels: Path, starts: int, round_trips: int) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {p: {"start": []} for p in POLICIES}
    for _ in range(starts):
        for policy in POLICIES:  # alternate, so drift on a shared machine hits both alike
            measured = await one_kernel(kernels, policy, round_trips)
            results[policy]["start"].append(measured["start"])  # type: ignore[arg-type]
            for label, values in measured["samples"].items():  # type: ignore[union-attr]
                results[policy].setdefault(label, []).extend(values)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=5, help="kernels started per policy (default 5)")
    parser.add_argument("--round-trips", type=int, default=200, help="small round trips per kernel (default 200)")
    parser.add_argument("--json", action="store_true", help="also print the medians as one JSON line")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kf-bench-curve-") as prefix:
        subprocess.run([str(Path(sys.executable).parent / "jupyter-ssh-spec"), "install", "--prefix", prefix,
                        "--kernel-name", "bench_curve"], check=True, capture_output=True)
        kernels = Path(prefix) / "share" / "jupyter" / "kernels"
        results = asyncio.run(run(kernels, args.starts, args.round_trips))
    medians = {p: {label: median(v) for label, v in measured.items()} for p, measured in results.items()}
    rows = [("median", "disabled", "required", "cost")]
    for label in medians["disabled"]:
        off, on = medians["disabled"][label], medians["required"][label]
        scale, unit = (1, "s") if label == "start" else (1e3, "ms")
        rows.append((f"{label} ({len(results['required'][label])} samples)", f"{off * scale:.3f} {unit}",
                     f"{on * scale:.3f} {unit}", f"{(on - off) * scale:+.3f} {unit} ({(on / off - 1) * 100:+.0f}%)"))
    table(rows)
    if args.json:
        print(json.dumps(medians))
    return 0


if __name__ == "__main__":
    sys.exit(main())
