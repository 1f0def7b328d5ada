"""R and Scala kernels through the whole stack on the embedded default, as a notebook server runs them.

The launchers are installed by the real ``jupyter image-bootstrap install --languages r --languages scala``
into a temporary directory, the kernelspecs are written by the real ``jupyter ssh-spec install``, and
jupyter_client's AsyncKernelManager drives distributed-provisioner (local processes), the real response
broker, the pure-R launcher with IRkernel, and the Java launcher with Apache Toree and Spark.

Needs R with IRkernel/jsonlite/openssl, Java 17, the ``toree`` and ``pyspark`` packages in this venv and the
Scala launcher jar (tools/build-scala-launcher). One kernel per language: a Toree start costs 15-60 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from rs_testing import (
    SAY_STARTED_R,
    SAY_STARTED_SCALA,
    connect,
    execute,
    execute_after_interrupt,
    execute_settled,
    hostile_requests_are_ignored,
    interrupt,
    r_kernel_takes_signals,
    running_loopback_broker,
)

REPO = Path(__file__).resolve().parents[2]
LAUNCHER_JAR = REPO / "launchers" / "scala" / "dist" / "kernelfleet-toree-launcher.jar"
JUPYTER = Path(sys.executable).with_name("jupyter")
# Bounds on waits, not expectations: Toree's JVM, Spark and Scala compiler are slow on a loaded host.
R_READY = 60.0
SCALA_READY = 240.0

pytestmark = pytest.mark.timeout(600)


# ------------------------------------------------------------------------------------------ set-up


@dataclass
class Installed:
    """A private Jupyter prefix with both kernelspecs, and the launchers they point at."""

    kernels_dir: Path
    launchers_dir: Path
    r_spec: str
    scala_spec: str


def _package_dir(name: str) -> str | None:
    spec = importlib.util.find_spec(name)
    return next(iter(spec.submodule_search_locations)) if spec and spec.submodule_search_locations else None


def _check_tools() -> tuple[str, str]:
    """(JAVA_HOME, SPARK_HOME), after failing with what to install for anything missing."""
    if shutil.which("Rscript") is None:
        pytest.fail("Rscript is not installed: R kernels need R (Debian: apt-get install r-base-core)")
    probe = subprocess.run(
        ["Rscript", "-e", 'm <- c("IRkernel", "jsonlite", "openssl"); '
         'cat(m[!vapply(m, requireNamespace, TRUE, quietly = TRUE)])'],
        capture_output=True, text=True, timeout=120,
    )
    if probe.returncode != 0 or probe.stdout.split():
        pytest.fail(f"R packages missing: {probe.stdout.strip() or probe.stderr.strip()} "
                    "(Debian: apt-get install r-cran-irkernel r-cran-jsonlite r-cran-openssl)")
    java_home = os.environ.get("JAVA_HOME")
    java = shutil.which("java", path=os.path.join(java_home, "bin")) if java_home else shutil.which("java")
    if java is None:
        pytest.fail("java is not installed: Scala kernels need Java 17 "
                    "(Debian: apt-get install openjdk-17-jre-headless)")
    java_home = java_home or str(Path(os.path.realpath(java)).parents[1])
    spark_home = _package_dir("pyspark")
    if spark_home is None or not Path(spark_home, "bin", "spark-submit").exists():
        pytest.fail("the 'pyspark' package is missing from this venv: pip install 'pyspark==3.5.*'")
    if _package_dir("toree") is None:
        pytest.fail("the 'toree' package is missing from this venv: pip install toree==0.5.0")
    if not LAUNCHER_JAR.exists():
        pytest.fail(f"{LAUNCHER_JAR.relative_to(REPO)} is missing: build it with tools/build-scala-launcher")
    if not JUPYTER.exists():
        pytest.fail(f"{JUPYTER} is missing: run tools/setup-venv")
    return java_home, spark_home


def _jupyter(*args: str) -> None:
    run = subprocess.run([str(JUPYTER), *args], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PATH": f"{JUPYTER.parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    assert run.returncode == 0, f"jupyter {' '.join(args)} failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Launchers and kernelspecs written by our real CLIs, as an administrator would."""
    java_home, spark_home = _check_tools()
    root = tmp_path_factory.mktemp("rs")
    _jupyter("image-bootstrap", "install", "--languages", "r", "--languages", "scala",
             "--install-dir", str(root / "bin"))
    launchers = root / "bin" / "kernel-launchers"
    assert (launchers / "r" / "launch_IRkernel.R").is_file()
    assert os.access(launchers / "scala" / "bin" / "run.sh", os.X_OK)
    assert list((launchers / "scala" / "lib").glob("toree-assembly-*.jar"))

    prefix = root / "prefix"
    _jupyter("ssh-spec", "install", "--language", "R", "--launchers-dir", str(launchers), "--prefix", str(prefix),
             "--kernel-name", "rs_r", "--launch-timeout", "120")
    _jupyter("ssh-spec", "install", "--language", "scala", "--launchers-dir", str(launchers), "--prefix", str(prefix),
             "--kernel-name", "rs_scala", "--spark", "--spark-home", spark_home, "--spark-init-mode", "lazy",
             "--launch-timeout", "240")
    kernels = prefix / "share" / "jupyter" / "kernels"
    # Loopback only: the kernels, and (through run.sh) Spark's driver, bind 127.0.0.1.
    for name, extra in (("rs_r", {}), ("rs_scala", {"JAVA_HOME": java_home, "SPARK_LOCAL_IP": "127.0.0.1"})):
        path = kernels / name / "kernel.json"
        spec = json.loads(path.read_text())
        spec["env"] = {**spec["env"], "KERNEL_IP": "127.0.0.1", **extra}
        path.write_text(json.dumps(spec, indent=2))
    r_spec = json.loads((kernels / "rs_r" / "kernel.json").read_text())
    assert r_spec["language"] == "R" and r_spec["argv"][0] == "Rscript"
    assert r_spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "distributed-provisioner"
    return Installed(kernels, launchers, "rs_r", "rs_scala")


@pytest.fixture(autouse=True)
async def loopback_broker(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """The shared broker on 127.0.0.1, started up front as a server does, stopped after each test."""
    async with running_loopback_broker(monkeypatch):
        yield


# ------------------------------------------------------------------------------------------ helpers


def kernel_processes(kernel_id: str) -> list[int]:
    """Live processes whose command line carries this kernel id: launcher, kernel, listener, JVM."""
    found = []
    needle = kernel_id.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "cmdline").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def process_names(pids: list[int]) -> list[str]:
    names = []
    for pid in pids:
        with contextlib.suppress(OSError):
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
    return names


async def assert_nothing_left(kernel_id: str, within: float) -> None:
    deadline = time.monotonic() + within
    while left := kernel_processes(kernel_id):
        if time.monotonic() > deadline:
            raise AssertionError(f"kernel {kernel_id}: processes {left} ({process_names(left)}) still alive "
                                 f"{within}s after shutdown")
        await asyncio.sleep(0.2)


def kill_leftovers(kernel_id: str) -> None:
    for pid in kernel_processes(kernel_id):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def manager(installed: Installed, name: str) -> AsyncKernelManager:
    return AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(
        kernel_dirs=[str(installed.kernels_dir)]))


# ------------------------------------------------------------------------------------------ tests


async def test_r_kernel_lifecycle(installed: Installed) -> None:
    km = manager(installed, installed.r_spec)
    client: AsyncKernelClient | None = None
    kernel_id = ""
    try:
        t0 = time.monotonic()
        await km.start_kernel()
        kernel_id = km.kernel_id
        client = await connect(km, R_READY)
        first = await execute(client, "1+1")
        assert first["status"] == "ok" and first["result"] == "[1] 2", first
        print(f"\nR via the launcher: start to first execute {time.monotonic() - t0:.2f}s", file=sys.stderr)
        assert (await execute(client, 'x <- 41; cat(Sys.getenv("KERNEL_ID"))'))["stdout"] == kernel_id
        first_pids = kernel_processes(kernel_id)
        assert first_pids, "no R process carries the kernel id"

        for code in ("Sys.sleep(300)", "repeat { y <- sqrt(2) }"):
            reply = await interrupt(km, client, SAY_STARTED_R + code)
            assert reply["status"] in ("abort", "aborted", "error"), reply
            after = await execute_settled(client, "x + 1")
            assert after["status"] == "ok" and after["result"] == "[1] 42", after

        await hostile_requests_are_ignored(km)
        assert (await execute(client, "x + 1"))["result"] == "[1] 42"

        await km.restart_kernel()
        client.stop_channels()  # a restarted kernel listens on new ports: reconnect, as jupyter_server does
        client = await connect(km, R_READY)
        fresh = await execute(client, 'exists("x")')
        assert fresh["status"] == "ok" and fresh["result"] == "[1] FALSE", fresh
        assert not set(first_pids) & set(kernel_processes(kernel_id)), "restart left the old R processes running"

        client.stop_channels()
        client = None
        await km.shutdown_kernel()
        assert not km.has_kernel
        await assert_nothing_left(kernel_id, within=15)
    finally:
        if client is not None:
            client.stop_channels()
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
        if kernel_id:
            kill_leftovers(kernel_id)


async def test_r_kernel_takes_signals_by_name(installed: Installed) -> None:
    """send_signal through distributed-provisioner and protocol 2.2's signal op to the R launcher: SIGSTOP pauses
    the R kernel (its comm listener still answers), SIGCONT resumes it and the cell sent meanwhile runs; SIGHUP,
    on which R ends, ends the kernel."""
    km = manager(installed, installed.r_spec)
    kernel_id = ""
    try:
        await km.start_kernel()
        kernel_id = km.kernel_id
        client = await connect(km, R_READY)
        try:
            await r_kernel_takes_signals(km, client)
        finally:
            client.stop_channels()
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
        if kernel_id:
            kill_leftovers(kernel_id)


async def test_scala_kernel_lifecycle(installed: Installed) -> None:
    km = manager(installed, installed.scala_spec)
    client: AsyncKernelClient | None = None
    kernel_id = ""
    try:
        t0 = time.monotonic()
        await km.start_kernel()
        kernel_id = km.kernel_id
        assert km.get_connection_info()["ip"] == "127.0.0.1"
        client = await connect(km, SCALA_READY)
        first = await execute(client, "1+1")
        assert first["status"] == "ok" and first["result"] == "2", first
        print(f"\nScala via the launcher: start to first execute {time.monotonic() - t0:.2f}s", file=sys.stderr)

        job = await execute(client, "sc.parallelize(1 to 100).sum()")
        assert job["status"] == "ok" and job["result"] == "5050.0", job

        reply = await interrupt(km, client, SAY_STARTED_SCALA + "Thread.sleep(300000); 7")
        assert reply["status"] == "error" and reply["ename"] == "java.lang.InterruptedException", reply
        after = await execute_after_interrupt(client, "1+2")
        assert after["result"] == "3", after

        await hostile_requests_are_ignored(km)
        assert (await execute(client, "2+3"))["result"] == "5"
        assert "java" in process_names(kernel_processes(kernel_id)), "the kernel is not a JVM carrying its kernel id"

        client.stop_channels()
        client = None
        await km.shutdown_kernel()
        assert not km.has_kernel
        await assert_nothing_left(kernel_id, within=30)
    finally:
        if client is not None:
            client.stop_channels()
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
        if kernel_id:
            kill_leftovers(kernel_id)
