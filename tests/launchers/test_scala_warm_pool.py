"""A Toree kernel from a warm pool on the embedded default (distributed-provisioner, localhost): the real Scala
launcher in standby mode (launchers/scala, Warmup + Standby), the real broker and pool, jupyter_client's
AsyncKernelManager. The claimed kernel runs cells with the request's environment and working directory, is
interrupted, restarted and shut down like a cold one, and nothing is left behind: no JVM, no standby.

Needs Java 17 and the PyPI packages ``toree==0.5.0`` and ``pyspark==3.5.*`` (as tests/launchers/test_scala_launcher.py).
Waits are on events (the pool's change notifications, cell output, process exits); deadlines are generous because a
Toree standby's warm-up costs a cold Toree start (15-60 s on a loaded host).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from kf_testing import process_exited
from rs_testing import SAY_STARTED_SCALA, connect, execute, execute_after_interrupt, interrupt, running_loopback_broker

from kernelfleet.provisioners.leases import close_all
from kernelfleet.provisioners.pool import WarmPool, pools

REPO = Path(__file__).resolve().parents[2]
RUN_SH = REPO / "launchers" / "scala" / "run.sh"
LAUNCHER_JAR = REPO / "launchers" / "scala" / "dist" / "kernelfleet-toree-launcher.jar"
READY = 300.0  # a JVM, Toree and its compiler on a loaded 2-core host
POOL_WAIT = 600.0

pytestmark = pytest.mark.timeout(1500)


def standby_pids(pool_id: str) -> list[int]:
    """Live processes started as standbys of ``pool_id`` (claimed ones included: a JVM keeps its first environment)."""
    marker = f"KF_STANDBY_POOL={pool_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state not in ("Z", "X") and marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture
def kernels_dir(tmp_path: Path) -> Path:
    """A Scala kernelspec on the repository's run.sh with a pool of one standby, lazy Spark, loopback only."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.fail("java is not installed: Scala kernels need Java 17 (Debian: apt-get install openjdk-17-jdk)")
    if not LAUNCHER_JAR.exists():
        pytest.fail(f"{LAUNCHER_JAR.relative_to(REPO)} is missing: build it with tools/build-scala-launcher")
    kernels = tmp_path / "kernels"
    (kernels / "pooled_scala").mkdir(parents=True)
    spec = {
        "argv": [str(RUN_SH), "--kernel-id", "{kernel_id}", "--port-range", "{port_range}", "--response-address",
                 "{response_address}", "--public-key", "{public_key}", "--spark-context-initialization-mode", "lazy"],
        "env": {"KERNEL_IP": "127.0.0.1", "SPARK_LOCAL_IP": "127.0.0.1"},
        "display_name": "Scala, pooled", "language": "scala", "interrupt_mode": "signal",
        "metadata": {"kernel_provisioner": {"provisioner_name": "distributed-provisioner", "config": {
            "warm_pool_size": 1, "launch_timeout": READY}}},
    }
    (kernels / "pooled_scala" / "kernel.json").write_text(json.dumps(spec))
    return kernels


@pytest.fixture(autouse=True)
async def pools_closed(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """The shared broker on 127.0.0.1; afterwards every pool is closed and none of its standbys is left."""
    async with running_loopback_broker(monkeypatch):
        yield
        ids = [pool.pool_id for pool in pools()]
        await close_all()
    for pool_id in ids:
        for pid in standby_pids(pool_id):
            await process_exited(pid)


def manager(kernels: Path) -> AsyncKernelManager:
    return AsyncKernelManager(kernel_name="pooled_scala", kernel_spec_manager=KernelSpecManager(
        kernel_dirs=[str(kernels)]))


async def full_pool(kernels: Path) -> WarmPool:
    """The first start of the kernelspec creates its pool (that start is cold); the pool once its standby is ready."""
    cold = manager(kernels)
    await cold.start_kernel()
    await cold.shutdown_kernel(now=True)
    (pool,) = pools()
    await asyncio.wait_for(pool.until(lambda p: len(p.idle) == p.settings.size and p.starting == 0), POOL_WAIT)
    return pool


async def test_pooled_toree_kernel_lifecycle(kernels_dir: Path, tmp_path: Path) -> None:
    pool = await full_pool(kernels_dir)
    standby = pool.idle[0]
    workdir = tmp_path / "work"
    workdir.mkdir()
    km = manager(kernels_dir)
    await km.start_kernel(env={**os.environ, "KERNEL_TEAM": "blue"}, cwd=str(workdir))
    client = None
    try:
        assert pool.stats["claimed"] == 1, pool.stats
        jvm = km.provisioner.local_process.pid
        assert jvm == standby.handle.pid, "the kernel is not the claimed standby's JVM"
        client = await connect(km, READY)
        first = await execute(client, "1+1")
        assert first["status"] == "ok" and first["result"] == "2", first

        # the claim's environment and working directory, applied before any cell; the standby's own values gone
        # (a value, not println: Toree may flush a cell's stream output after its idle status)
        probe = await execute(client, 'val x = 41\nSeq(sys.env.get("KERNEL_ID"), sys.env.get("KERNEL_TEAM"), '
                                      'sys.env.get("KF_STANDBY_ID"), new java.io.File("w").getAbsoluteFile.getParent, '
                                      'java.nio.file.Paths.get("").toAbsolutePath).mkString("|")')
        assert probe["status"] == "ok", probe
        assert probe["result"].strip('"') == f"Some({km.kernel_id})|Some(blue)|None|{workdir}|{workdir}", probe
        assert (await execute(client, "x + 1"))["result"] == "42"

        reply = await interrupt(km, client, SAY_STARTED_SCALA + "Thread.sleep(300000); 7")
        assert reply["status"] == "error" and reply["ename"] == "java.lang.InterruptedException", reply
        after = await execute_after_interrupt(client, "x + 2")
        assert after["result"] == "43", after

        await km.restart_kernel()  # claims a fresh standby or starts cold; never the one it had
        client.stop_channels()
        await process_exited(jvm)
        assert km.provisioner.local_process.pid != jvm
        client = await connect(km, READY)
        fresh = await execute(client, "x")
        assert fresh["status"] == "error", fresh  # a new interpreter: x is gone
        assert (await execute(client, "6*7"))["result"] == "42"
        second = km.provisioner.local_process.pid
        client.stop_channels()
        client = None
        await km.shutdown_kernel()
        await process_exited(second)
        assert not km.has_kernel
        assert pool.stats["failed"] == 0 and pool.stats["lost"] == 0, pool.stats
    finally:
        if client is not None:
            client.stop_channels()
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
