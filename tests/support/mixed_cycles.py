"""Mixed lifecycle cycles against one engine, and the leak measurement around them (issue 11, item 5).

One cycle does what users and faults do to a kernel, through one ``AsyncMultiKernelManager`` as a Jupyter server
holds its kernels (with jupyter_client's restarter polling each): start, execute, interrupt a running cell, restart
(graceful or immediate), ``kill -9`` of the kernel (it kills itself with SIGKILL, which works the same on every
engine) until the restarter noticed the death and started it again, execute, shut it down (graceful or immediate),
and one launch that fails before its kernel reports. ``measure_leaks`` runs a warm-up cycle (shared clients and
connection pools open on first use and stay), takes the server's footprint, runs the cycles, and reports what grew
and what the engine still holds. Used by ``tests/leaks`` (a few cycles), ``tools/bench/leak_cycles.py`` (100)
and ``tools/bench/soak.py``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.multikernelmanager import AsyncMultiKernelManager
from kf_testing import connect, execute, interrupted_reply, start_busy_cell
from leak_probe import Footprint, footprint, processes_of_server, settled_footprint, wait_for_nothing
from reliability_figures import record_figure

DEFAULT_CYCLES = 10


def cycle_count(default: int = DEFAULT_CYCLES) -> int:
    """Cycles per engine: ``KF_LEAK_CYCLES`` when set (``tools/bench/leak_cycles.py`` runs 100), else ``default``."""
    return int(os.environ.get("KF_LEAK_CYCLES") or default)


KILL_ITSELF = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
FAILING_KERNEL_CLASS = "kf_leaks_missing.Kernel"  # the launcher's kernel cannot import it: no report, ever
# The Python launcher as local and SSH kernelspecs run it, and the same with a kernel that fails before the report.
LAUNCHER_ARGV = [sys.executable, "-m", "kernelfleet.launcher", "--kernel-id", "{kernel_id}", "--port-range",
                 "{port_range}", "--response-address", "{response_address}", "--public-key", "{public_key}"]
FAILING_LAUNCHER_ARGV = [*LAUNCHER_ARGV, "--kernel-class-name", FAILING_KERNEL_CLASS]
DEATH_DEADLINE = 60.0


def kernel_manager_for(kernels_dir: Path) -> AsyncMultiKernelManager:
    """The server's kernel manager, reading this test's kernelspecs; connection files go to a ``runtime`` directory
    next to them (as jupyter_server puts them in its runtime directory), where ``measure_leaks`` counts them."""
    runtime = kernels_dir.parent / "runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    return AsyncMultiKernelManager(kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]),
                                   connection_dir=str(runtime))


def connection_files(mkm: AsyncMultiKernelManager) -> list[str]:
    """Connection files in the manager's directory: each names a kernel the server still holds."""
    return sorted(path.name for path in Path(mkm.connection_dir).glob("kernel-*.json"))


async def restarted_by_the_restarter(mkm: AsyncMultiKernelManager, kernel_id: str, kill: Callable[[], Any]) -> None:
    """Run ``kill`` and return once jupyter_client's restarter (the server's, running for every kernel of the manager)
    has noticed the death through the provisioner's ``poll`` and started the kernel again: its "restart" callback."""
    km = mkm.get_kernel(kernel_id)
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[str] = loop.create_future()

    def restarted() -> None:
        if not outcome.done():
            outcome.set_result("restart")

    def dead() -> None:
        if not outcome.done():
            outcome.set_result("dead")

    km.add_restart_callback(restarted, "restart")
    km.add_restart_callback(dead, "dead")
    try:
        kill()
        async with asyncio.timeout(DEATH_DEADLINE):
            event = await outcome
            # The callback fires before the restarter calls restart_kernel, and jupyter_client announces no end of
            # that restart: look until the new launch is done and its kernel alive.
            while event == "restart":
                if km.ready.done() and await km.is_alive():
                    break
                await asyncio.sleep(0.1)
    finally:
        km.remove_restart_callback(restarted, "restart")
        km.remove_restart_callback(dead, "dead")
    assert event == "restart", f"kernel {kernel_id}: the restarter gave up on the killed kernel"


async def mixed_cycle(mkm: AsyncMultiKernelManager, name: str, failing: str, index: int) -> None:
    """One cycle (see the module docstring); ``index`` varies graceful/immediate and restart-after-death."""
    kernel_id = await mkm.start_kernel(kernel_name=name)
    try:
        km = mkm.get_kernel(kernel_id)
        client = await connect(km)
        try:
            reply = await execute(client, "x = 6 * 7\nprint(x)")
            assert reply["status"] == "ok" and reply["stdout"].strip() == "42", reply
            busy = await start_busy_cell(client)
            await mkm.interrupt_kernel(kernel_id)
            await interrupted_reply(client, busy)
        finally:
            client.stop_channels()
        await mkm.restart_kernel(kernel_id, now=index % 2 == 0)
        client = await connect(km)
        try:
            reply = await execute(client, "print('restarted')")
            assert reply["status"] == "ok" and reply["stdout"].strip() == "restarted", reply
            await restarted_by_the_restarter(mkm, kernel_id, lambda: client.execute(KILL_ITSELF))  # kill -9
        finally:
            client.stop_channels()
        client = await connect(km)
        try:
            assert (await execute(client, "print(1 + 1)"))["stdout"].strip() == "2"
        finally:
            client.stop_channels()
    finally:
        await mkm.shutdown_kernel(kernel_id, now=index % 3 == 0)
    try:
        failed = await mkm.start_kernel(kernel_name=failing)
    except Exception:  # the launch is meant to fail; its error is the provisioner's business
        pass
    else:
        await mkm.shutdown_kernel(failed, now=True)
        raise AssertionError(f"kernelspec {failing} started kernel {failed}; it should have failed its launch")


async def run_cycles(mkm: AsyncMultiKernelManager, name: str, failing: str, count: int, at_once: int,
                     first: int = 0) -> float:
    """``count`` cycles, ``at_once`` at a time; the seconds they took."""
    started = time.monotonic()
    slots = asyncio.Semaphore(at_once)

    async def one(index: int) -> None:
        async with slots:
            await mixed_cycle(mkm, name, failing, index)

    # A task group: a failing cycle cancels the others, so none goes on starting kernels after the caller cleaned up.
    async with asyncio.TaskGroup() as group:
        for i in range(count):
            group.create_task(one(first + i))
    return time.monotonic() - started


@dataclass
class LeakReport:
    """What ``measure_leaks`` found: the footprint before and after, and every leftover by kind."""

    engine: str
    cycles: int
    seconds: float
    before: Footprint
    after: Footprint
    leftovers: dict[str, list[str]] = field(default_factory=dict)
    before_state: dict[str, int] = field(default_factory=dict)
    after_state: dict[str, int] = field(default_factory=dict)

    @property
    def growth(self) -> dict[str, dict[str, int]]:
        return self.after.growth(self.before)

    @property
    def state_growth(self) -> dict[str, int]:
        return {k: v - self.before_state.get(k, 0) for k, v in self.after_state.items()
                if v > self.before_state.get(k, 0)}

    def leaked(self) -> dict[str, Any]:
        """Everything that must be empty: grown descriptors and tasks, engine leftovers, grown pool state."""
        found: dict[str, Any] = {kind: items for kind, items in self.leftovers.items() if items}
        found.update({kind: grown for kind, grown in self.growth.items() if grown})
        if self.state_growth:
            found["state"] = self.state_growth
        return found

    def figures(self) -> dict[str, float]:
        """The numbers worth recording: cycles run, counts before and after, leftovers per kind."""
        values: dict[str, float] = {
            "cycles": self.cycles, "seconds": round(self.seconds, 2),
            "fds_before": self.before.fd_count, "fds_after": self.after.fd_count,
            "tasks_before": self.before.task_count, "tasks_after": self.after.task_count,
        }
        values.update({f"leaked_{kind}": len(items) for kind, items in self.leftovers.items()})
        values.update({f"{k}_before": v for k, v in self.before_state.items()})
        values.update({f"{k}_after": v for k, v in self.after_state.items()})
        return values


EngineProbe = Callable[[], Awaitable[list[str]]]


async def measure_leaks(engine: str, mkm: AsyncMultiKernelManager, name: str, failing: str, server_id: str, *,
                        cycles: int, at_once: int, engine_objects: EngineProbe | None = None,
                        state: Callable[[], dict[str, int]] | None = None, settle: float = 20.0,
                        warmup: int = 1) -> LeakReport:
    """Warm up with ``warmup`` concurrent cycles, then ``cycles`` cycles; what grew and what is left (see
    ``LeakReport``). An engine reached through a connection pool (Kubernetes' API client) keeps as many keep-alive
    connections as requests ran at once: warm it up with ``at_once`` cycles."""
    await run_cycles(mkm, name, failing, warmup, warmup)
    await wait_for_nothing(lambda: processes_of_server(server_id))
    if engine_objects is not None:  # the probe's own client (a pool of keep-alive sockets) is warm before the baseline
        await wait_for_nothing(engine_objects)
    before = footprint()
    before_state = state() if state else {}
    seconds = await run_cycles(mkm, name, failing, cycles, at_once, first=warmup)
    leftovers = {"processes": await wait_for_nothing(lambda: processes_of_server(server_id)),
                 "connection files": connection_files(mkm)}
    if engine_objects is not None:
        leftovers["engine objects"] = await wait_for_nothing(engine_objects)
    after = await settled_footprint(before, settle)
    return LeakReport(engine, cycles, seconds, before, after, leftovers, before_state, state() if state else {})


def assert_no_leaks(report: LeakReport, test: str) -> None:
    """Record the report's figures (``KF_RELIABILITY_FIGURES``) and fail with everything that leaked."""
    for metric, value in report.figures().items():
        record_figure(test, report.engine, "mixed cycles", metric, value)
    leaked = report.leaked()
    assert not leaked, (f"{report.engine}: {report.cycles} mixed cycles leaked {leaked} (descriptors "
                        f"{report.before.fd_count} -> {report.after.fd_count}, tasks {report.before.task_count} -> "
                        f"{report.after.task_count})")
