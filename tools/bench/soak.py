"""Soak: N kernels on a mix of engines for M minutes under random operations (issue 11, item 6). Not a CI test.

One process plays the Jupyter server (one ``AsyncMultiKernelManager``, as a server holds its kernels) and its
users: each kernel has a user who, after a random pause, does one of execute, interrupt a running cell, restart,
or shut down and start a new kernel on the same engine. Engines: local (distributed-provisioner on localhost),
ssh (a real sshd on 127.0.0.2 started for the run, tests/ssh/sshd.py), docker (docker-provisioner, host network).
Every 5 s the server's RSS and open descriptors are sampled. At the end every kernel is shut down and nothing
carrying this run's server identity may be left.

Prints: errors (must be 0, each with its message); the server's RSS and descriptors at start, end and max, the
means of the first and last quarter of the run and a least-squares slope per minute (flat: the quarters agree and
the slope is near 0); p50/p99 per operation and engine. Exits 1 on any error or leftover.

Usage: .venv/bin/python tools/bench/soak.py [--kernels 50] [--minutes 10] [--engines local,ssh,docker]
       [--pause 5,15] [--weights 6,2,1,1] [--seed 1] [--image kernelfleet/kernel-py:dev]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "ssh"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import table
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.multikernelmanager import AsyncMultiKernelManager
from kf_testing import connect, execute, interrupted_reply, start_busy_cell
from leak_cycles import specs_for
from leak_probe import docker_objects_of_server, processes_of_server, wait_for_nothing
from mixed_cycles import connection_files, kernel_manager_for

from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.leases import close_all

ENGINES = ("local", "ssh", "docker")
OPERATIONS = ("execute", "interrupt", "restart", "shutdown+start")
# A user mostly runs cells; restarts and replacements are the rarer, expensive operations. Each kernel start costs
# about one CPU-second here (interpreter, ipykernel, launcher), so on a 2-core machine the default mix (50 users, one
# operation every 5-15 s, 1 in 5 a start) keeps starts near one per second: the run measures the server, not a
# saturated CPU. --weights 1,1,1,1 --pause 1,4 is the overload variant.
DEFAULT_WEIGHTS = "6,2,1,1"
DEFAULT_PAUSE = "5.0,15.0"
SAMPLE_SECONDS = 5.0
OPERATION_TIMEOUT = 180.0


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per minute; 0 for fewer than two samples."""
    if len(samples) < 2:
        return 0.0
    xs, ys = [s[0] for s in samples], [s[1] for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class Soak:
    """The run's shared state: the server's kernel manager, timings, errors and resource samples."""

    mkm: AsyncMultiKernelManager
    specs: dict[str, str]
    deadline: float
    pause: tuple[float, float]
    rng: random.Random
    weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    timings: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    baseline: Any = None  # tracemalloc snapshot a quarter of the way in (--tracemalloc)
    started: float = field(default_factory=time.monotonic)

    def error(self, message: str) -> None:
        """Record an error and print it at once, so a run that dies later still shows what went wrong."""
        self.errors.append(message[:400])
        print(f"soak: ERROR at {time.monotonic() - self.started:.0f} s: {message[:400]}", file=sys.stderr, flush=True)


class User:
    """One kernel and the user driving it; the kernel is replaced on shutdown+start."""

    def __init__(self, soak: Soak, engine: str) -> None:
        self.soak = soak
        self.engine = engine
        self.kernel_id: str | None = None
        self.client: AsyncKernelClient | None = None

    async def start(self) -> None:
        self.kernel_id = await self.soak.mkm.start_kernel(kernel_name=self.soak.specs[self.engine])
        await self.reconnect()

    async def reconnect(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
        assert self.kernel_id is not None
        self.client = await connect(self.soak.mkm.get_kernel(self.kernel_id))

    async def stop(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        if self.kernel_id is not None:
            kernel_id, self.kernel_id = self.kernel_id, None
            await self.soak.mkm.shutdown_kernel(kernel_id)

    async def execute(self) -> None:
        assert self.client is not None
        reply = await execute(self.client, "n = globals().get('n', 0) + 1\nprint('ok', n)")
        if reply["status"] != "ok" or not reply["stdout"].startswith("ok "):
            raise RuntimeError(f"execute answered {reply['status']}: {reply.get('evalue') or reply['stdout']!r}")

    async def interrupt(self) -> None:
        assert self.client is not None and self.kernel_id is not None
        busy = await start_busy_cell(self.client)
        await self.soak.mkm.interrupt_kernel(self.kernel_id)
        await interrupted_reply(self.client, busy)

    async def restart(self) -> None:
        assert self.kernel_id is not None
        await self.soak.mkm.restart_kernel(self.kernel_id)
        await self.reconnect()
        await self.execute()

    async def replace(self) -> None:
        await self.stop()
        await self.start()
        await self.execute()

    async def run(self) -> None:
        soak = self.soak
        actions = {"execute": self.execute, "interrupt": self.interrupt, "restart": self.restart,
                   "shutdown+start": self.replace}
        while True:
            await asyncio.sleep(soak.rng.uniform(*soak.pause))
            if time.monotonic() >= soak.deadline:
                return
            op = soak.rng.choices(OPERATIONS, weights=soak.weights)[0]
            t0 = time.perf_counter()
            try:
                await run_bounded(actions[op](), f"{self.engine} {op} kernel {self.kernel_id}")
            except Exception as err:  # every failure is a soak error, reported with its kernel and message
                soak.error(f"{self.engine} {op} kernel {self.kernel_id} after {time.perf_counter() - t0:.1f} s: "
                           f"{type(err).__name__}: {err}")
                try:  # carry on with a fresh kernel, so one failure does not end this user's run
                    await self.stop()
                    await self.start()
                except Exception as again:
                    soak.error(f"{self.engine} recovery: {type(again).__name__}: {again}")
                    return
            else:
                soak.timings[(op, self.engine)].append(time.perf_counter() - t0)


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """Where a stuck task waits: each coroutine of its ``await`` chain (file:line function), then the awaited
    object. Task.get_stack shows only the outermost frame of a suspended coroutine; this follows ``cr_await``."""
    chain: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None and len(chain) < 60:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            chain.append(repr(awaited)[:200])
            break
        chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return chain


async def run_bounded(operation: Any, what: str) -> None:
    """Run one operation for at most OPERATION_TIMEOUT; a stuck one prints where it waits before it is cancelled."""
    task = asyncio.ensure_future(operation)
    done, _ = await asyncio.wait({task}, timeout=OPERATION_TIMEOUT)
    if not done:
        print(f"soak: {what} stuck for {OPERATION_TIMEOUT:g} s, waiting at:", file=sys.stderr)
        for line in await_chain(task):
            print(f"    {line}", file=sys.stderr)
        for other in asyncio.all_tasks():
            if other is not task and not other.done() and "run_bounded" not in repr(other.get_coro()):
                chain = await_chain(other)
                if any("kernelfleet" in line for line in chain):
                    print(f"  task {other.get_name()}: {' <- '.join(reversed(chain[-4:]))}", file=sys.stderr)
        task.cancel()
        raise TimeoutError(f"no answer within {OPERATION_TIMEOUT:g} s")
    task.result()


async def sample(soak: Soak, trace: bool = False) -> None:
    """Sample RSS and descriptors every SAMPLE_SECONDS; with ``trace``, snapshot tracemalloc a quarter of the way
    in and print at the end (``print_growth``) where the server's Python memory grew since."""
    quarter = (soak.deadline - soak.started) / 4
    while True:
        soak.samples.append((time.monotonic() - soak.started, rss_kib(), fd_count()))
        if trace and soak.baseline is None and time.monotonic() - soak.started >= quarter:
            soak.baseline = tracemalloc.take_snapshot()
        await asyncio.sleep(SAMPLE_SECONDS)


def print_growth(baseline: Any, top: int = 15) -> None:
    """The allocation sites that grew most between the baseline snapshot and now (tracemalloc, 8 frames)."""
    if baseline is None:
        return
    stats = tracemalloc.take_snapshot().compare_to(baseline, "traceback")
    grown = sum(stat.size_diff for stat in stats)
    print(f"\npython memory since the first quarter: {grown / 2**20:+.2f} MiB; largest growth:")
    for stat in stats[:top]:
        frames = [f"{f.filename.split('site-packages/')[-1].split('/work/main/')[-1]}:{f.lineno}"
                  for f in stat.traceback[-3:]]
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {' <- '.join(reversed(frames))}")


async def soak_run(args: argparse.Namespace, root: Path, ssh_config: dict[str, Any]) -> int:
    server_id = f"soak-{uuid.uuid4().hex[:8]}"
    os.environ["KF_SERVER_ID"] = server_id
    engines = args.engines
    kernels = root / "kernels"
    specs = {engine: specs_for(engine, kernels, args.image, ssh_config)[0] for engine in engines}
    mkm = kernel_manager_for(kernels)
    await ResponseBroker.instance()
    rng = random.Random(args.seed)
    users = [User(Soak(mkm, specs, 0, (0, 0), rng), engines[i % len(engines)]) for i in range(args.kernels)]
    soak = Soak(mkm, specs, 0, tuple(args.pause), rng, tuple(args.weights))
    for user in users:
        user.soak = soak
    print(f"soak: starting {args.kernels} kernels on {', '.join(engines)} ...", file=sys.stderr, flush=True)
    slots = asyncio.Semaphore(6)

    async def first_start(user: User) -> None:
        async with slots:
            t0 = time.perf_counter()
            await user.start()
            soak.timings[("first start", user.engine)].append(time.perf_counter() - t0)

    await asyncio.gather(*(first_start(u) for u in users))
    soak.started = time.monotonic()
    soak.deadline = soak.started + args.minutes * 60
    sampler = asyncio.ensure_future(sample(soak, args.tracemalloc))
    print(f"soak: {args.kernels} kernels up; {args.minutes:g} minutes of random operations ...", file=sys.stderr,
          flush=True)
    try:
        await asyncio.gather(*(u.run() for u in users))
    finally:
        sampler.cancel()
        soak.samples.append((time.monotonic() - soak.started, rss_kib(), fd_count()))
        for user in users:
            try:
                await run_bounded(user.stop(), f"{user.engine} shutdown at the end")
            except Exception as err:
                soak.error(f"{user.engine} shutdown at the end: {type(err).__name__}: {err}")
        abandoned = await settle_starts(mkm)
        if abandoned:
            soak.error(f"{abandoned} start(s) never ended (cancelled by the operation timeout)")
        try:
            await run_bounded(mkm.shutdown_all(now=True), "shutdown_all")
        except Exception as err:
            soak.error(f"shutdown_all: {type(err).__name__}: {err}")
    left = await wait_for_nothing(lambda: processes_of_server(server_id))
    left += [f"connection file {name}" for name in connection_files(mkm)]
    if "docker" in engines:
        left += await wait_for_nothing(lambda: docker_objects_of_server(server_id))
    await close_all()  # the response broker too
    mkm.context.destroy(linger=0)
    print_growth(soak.baseline)
    return report(soak, args, left)


async def settle_starts(mkm: Any, timeout: float = 120.0) -> int:
    """Let every start still under way end, one way or the other, before ``shutdown_all``: jupyter_client's
    shutdown reads ``km.ready.exception()``, which raises InvalidStateError on a start that has not finished.
    A start cancelled by the operation timeout never settles its ``ready`` (jupyter_client sets it only on
    Exception, not on cancellation); those are cancelled here so the kernel can still be shut down. Returns how
    many were."""
    pending = [km.ready for km in (mkm.get_kernel(kid) for kid in mkm.list_kernel_ids()) if not km.ready.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
    abandoned = [ready for ready in pending if not ready.done()]
    for ready in abandoned:
        ready.cancel()
    return len(abandoned)


def report(soak: Soak, args: argparse.Namespace, left: list[str]) -> int:
    print(f"\nsoak: {args.kernels} kernels ({', '.join(args.engines)}), {args.minutes:g} min, seed {args.seed}")
    ops = sum(len(v) for k, v in soak.timings.items() if k[0] != "first start")
    minutes = max(args.minutes, 1e-9)
    print(f"operations: {ops} completed ({ops / (minutes * 60):.1f}/s; pause {args.pause}, weights {args.weights}), "
          f"errors: {len(soak.errors)} (must be 0)")
    for error in soak.errors[:20]:
        print(f"  ERROR {error}")
    quarter = max(1, len(soak.samples) // 4)
    rows = [("resource", "start", "end", "max", "mean 1st quarter", "mean last quarter", "slope per minute")]
    for index, name, scale in ((1, "server RSS (MiB)", 1024), (2, "descriptors", 1)):
        values = [s[index] / scale for s in soak.samples]
        points = [(s[0], s[index] / scale) for s in soak.samples]
        rows.append((name, f"{values[0]:.1f}", f"{values[-1]:.1f}", f"{max(values):.1f}",
                     f"{statistics.fmean(values[:quarter]):.1f}", f"{statistics.fmean(values[-quarter:]):.1f}",
                     f"{slope_per_minute(points):+.2f}"))
    table(rows)
    print()
    rows = [("operation", "engine", "count", "p50 s", "p99 s", "max s")]
    for (op, engine), values in sorted(soak.timings.items()):
        rows.append((op, engine, str(len(values)), f"{percentile(values, 0.5):.3f}", f"{percentile(values, 0.99):.3f}",
                     f"{max(values):.3f}"))
    table(rows)
    print(f"\nleft after shutdown (processes, containers with this run's server id, connection files): {len(left)}")
    for item in left:
        print(f"  LEFT {item}")
    print(json.dumps({"errors": len(soak.errors), "left": len(left),
                      "samples": [(round(t, 1), rss, fds) for t, rss, fds in soak.samples]}))
    return 1 if soak.errors or left else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--pause", default=DEFAULT_PAUSE, help="seconds between a user's operations: min,max")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS,
                        help="relative weights of execute,interrupt,restart,shutdown+start")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--image", default=os.environ.get("KF_TEST_IMAGE") or "kernelfleet/kernel-py:dev")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="print where the server's Python memory grew after the first quarter (slower)")
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start(8)
    args.engines = [e for e in args.engines.split(",") if e]
    args.pause = [float(v) for v in args.pause.split(",")]
    args.weights = [float(v) for v in args.weights.split(",")]
    if len(args.weights) != len(OPERATIONS):
        raise SystemExit(f"--weights needs {len(OPERATIONS)} numbers, one per operation {OPERATIONS}")
    if set(args.engines) - set(ENGINES):
        raise SystemExit(f"unknown engines {sorted(set(args.engines) - set(ENGINES))}; choose from {ENGINES}")
    os.environ.update(KF_RESPONSE_IP="127.0.0.1", KF_RESPONSE_PORT="0")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cluster = None
        ssh_config: dict[str, Any] = {}
        if "ssh" in args.engines:
            from sshd import SshdMissing, start_cluster

            try:
                cluster = start_cluster(root / "sshd", ("127.0.0.2",))
            except SshdMissing as err:
                raise SystemExit(f"soak: the ssh engine needs an sshd: {err}") from None
            ssh_config = {**cluster.provisioner_config(), "remote_log_dir": str(root)}
        try:
            code = asyncio.run(soak_run(args, root, ssh_config))
        finally:
            if cluster is not None:
                cluster.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
