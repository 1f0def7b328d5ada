"""The Scala launcher (launchers/scala) for Apache Toree, against the real response broker, a real Toree and Spark.

VectorCheck pins the wire format byte for byte with javax.crypto; the rest starts ``launchers/scala/run.sh`` the way
the bootstrap does (spark-submit, Toree in the launcher's JVM) and checks what the server relies on: the report
verifies, cells and Spark jobs run, a comm ``interrupt`` stops a sleeping cell and cancels a Spark job, hostile comm
requests are refused, and shutdown leaves no JVM behind.

Needs Java 17 and the PyPI packages ``toree==0.5.0`` and ``pyspark==3.5.*`` in the test environment.
"""

from __future__ import annotations

import asyncio
import base64
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from bench.port_contention import port_thief
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import write_connection_file
from kf_testing import STARTED, start_busy_cell
from rs_testing import SAY_STARTED_SCALA, collect, execute, execute_after_interrupt

from kernelfleet.protocol import Report, ServerKey, open_report, sign_request
from kernelfleet.protocol.comm import parse_greeting
from kernelfleet.protocol.comm_client import send_request
from kernelfleet.protocol.standby import open_registration
from kernelfleet.provisioners.broker import PendingLaunch, ResponseBroker

REPO = Path(__file__).resolve().parents[2]
SCALA_DIR = REPO / "launchers" / "scala"
RUN_SH = SCALA_DIR / "run.sh"
DIST = SCALA_DIR / "dist"
LAUNCHER_JAR = DIST / "kernelfleet-toree-launcher.jar"
TESTS_JAR = DIST / "kernelfleet-toree-launcher-tests.jar"
BUILD = REPO / "tools" / "build-scala-launcher"
VECTORS = REPO / "docs" / "protocol-vectors.json"
STANDBY_VECTORS = REPO / "docs" / "protocol-vectors-2.1.json"
LAUNCHER_VECTORS = REPO / "docs" / "launcher-vectors.json"
PORT_RANGE = (48000, 48999)
# JVM start, Spark and Toree's Scala compiler are slow on a loaded CI host; these bound waits, not expectations.
READY_TIMEOUT = 240.0
CELL_TIMEOUT = 120.0

pytestmark = pytest.mark.timeout(600)


@dataclass
class Toolchain:
    java_home: str
    spark_home: str
    toree_jar: str


def _package_dir(name: str) -> str | None:
    spec = importlib.util.find_spec(name)
    return next(iter(spec.submodule_search_locations)) if spec and spec.submodule_search_locations else None


@pytest.fixture(scope="module")
def toolchain() -> Toolchain:
    """Java, Toree and Spark, or a failure saying which one to install."""
    java_home_env = os.environ.get("JAVA_HOME")
    java = shutil.which("java", path=os.path.join(java_home_env, "bin")) if java_home_env else shutil.which("java")
    if java is None:
        pytest.fail("java is not installed: the Scala launcher needs a JDK 17 (Debian: apt-get install openjdk-17-jdk)")
    java_home = os.environ.get("JAVA_HOME") or str(Path(os.path.realpath(java)).parents[1])
    if not (Path(java_home) / "bin" / "jar").exists():
        pytest.fail(f"{java_home} is a JRE without the jar tool: the Scala launcher build needs a full JDK 17")
    toree_dir = _package_dir("toree")
    if toree_dir is None:
        pytest.fail("the 'toree' Python package is missing: pip install toree==0.5.0 (it ships the Toree assembly)")
    jars = sorted(Path(toree_dir, "lib").glob("toree-assembly-*.jar"))
    if not jars:
        pytest.fail(f"no toree-assembly-*.jar in {toree_dir}/lib: reinstall toree==0.5.0")
    spark_home = _package_dir("pyspark")
    if spark_home is None or not Path(spark_home, "bin", "spark-submit").exists():
        pytest.fail("the 'pyspark' Python package is missing: pip install 'pyspark==3.5.*' (it ships Spark and scalac)")
    return Toolchain(java_home, spark_home, str(jars[0]))


@pytest.fixture(scope="module")
def jars(toolchain: Toolchain) -> Path:
    """The launcher and its test jar, built with tools/build-scala-launcher when missing or older than a source."""
    sources = [*SCALA_DIR.joinpath("src").rglob("*.scala"), *SCALA_DIR.joinpath("test").rglob("*.scala"), BUILD,
               SCALA_DIR / "VERSION"]
    newest = max(p.stat().st_mtime for p in sources)
    if not all(j.exists() and j.stat().st_mtime >= newest for j in (LAUNCHER_JAR, TESTS_JAR)):
        env = dict(os.environ, JAVA_HOME=toolchain.java_home, SPARK_HOME=toolchain.spark_home,
                   TOREE_JAR=toolchain.toree_jar, PYTHON=sys.executable)
        build = subprocess.run([str(BUILD), "--tests"], env=env, capture_output=True, text=True, timeout=900)
        assert build.returncode == 0, f"tools/build-scala-launcher failed:\n{build.stdout}\n{build.stderr}"
    return LAUNCHER_JAR


def launcher_env(toolchain: Toolchain, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LAUNCH_TOKEN", "KERNEL_ID", "PORT_RANGE", "SPARK_OPTS")}
    env.update(JAVA_HOME=toolchain.java_home, SPARK_HOME=toolchain.spark_home, TOREE_JAR=toolchain.toree_jar,
               PYTHON=sys.executable, KERNEL_IP="127.0.0.1", SPARK_LOCAL_IP="127.0.0.1")
    env.update(extra)
    return env


# ------------------------------------------------------------------------------------------ vectors


def run_check(toolchain: Toolchain, main: str, vectors: Path) -> subprocess.CompletedProcess[str]:
    """Run a check object of the test jar on a vectors file; it must pass every check."""
    scala_library = next(Path(toolchain.spark_home, "jars").glob("scala-library-2.12.*.jar"))
    run = subprocess.run(
        [str(Path(toolchain.java_home, "bin", "java")), "-cp", f"{LAUNCHER_JAR}:{TESTS_JAR}:{scala_library}",
         f"kernelfleet.toree.{main}", str(vectors)],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0 and "FAIL" not in run.stdout, f"Scala {main} failed:\n{run.stdout}\n{run.stderr}"
    return run


def test_scala_launcher_contract(jars: Path, toolchain: Toolchain) -> None:
    """Options, port choice and the report's retries read docs/launcher-vectors.json as the Python and R launchers do:
    every case of the file is one check line, and each must pass."""
    run = run_check(toolchain, "ContractCheck", LAUNCHER_VECTORS)
    vectors = json.loads(LAUNCHER_VECTORS.read_text())
    lines = run.stdout.splitlines()
    wanted = [f"ok {'resolves' if 'expect' in c else 'refuses'}: {c['why']}" for c in vectors["resolve"]]
    wanted += [f"ok port range refused: {c['why']}" for c in vectors["port_ranges"]["invalid"]]
    wanted += ["ok port count and tries per port", "ok report connect window and timeouts"]
    assert [w for w in wanted if w not in lines] == [], run.stdout


def test_scala_protocol_vectors(jars: Path, toolchain: Toolchain) -> None:
    """javax.crypto reproduces docs/protocol-vectors.json byte for byte and refuses the reject comm line; a report it
    seals with real randomness opens with the Python server code."""
    run = run_check(toolchain, "VectorCheck", VECTORS)
    lines = run.stdout.splitlines()
    for name in ("report line reproduced byte for byte", "comm greeting",
                 "reject: comm request MAC made for another nonce", "comm request 'shutdown' verifies",
                 "hostile comm lines are unauthenticated", "kernel ids: the vectors' valid ids are accepted",
                 "kernel id refused: trailing newline", "signal vectors: accepted SIGUSR1",
                 "signal vectors: refused a raw signal number (numbers differ across platforms)",
                 "signal vectors: refused SIGKILL: it has its own op, kill",
                 "signal: this launcher refuses SIGSTOP and SIGTSTP (they would stop its comm port)"):
        assert f"ok {name}" in lines, f"missing check {name!r}:\n{run.stdout}"

    vectors = json.loads(VECTORS.read_text())
    fresh = next(line for line in lines if line.startswith("FRESH ")).removeprefix("FRESH ").encode()
    report = open_report(fresh, ServerKey.from_pem(vectors["server_private_key_pem"]),
                         expected_token=lambda _kid: vectors["report"]["launch_token"])
    plain = json.loads(vectors["report"]["plaintext"])
    assert report.kernel_id == vectors["report"]["kernel_id"]
    assert report.connection_info["shell_port"] == plain["shell_port"]
    assert report.comm_key == base64.b64decode(plain["comm_key"])

    escapes = next(line for line in lines if line.startswith("ESCAPES ")).removeprefix("ESCAPES ")
    tricky = json.loads(escapes)["s"]
    assert escapes == json.dumps({"s": tricky}, separators=(",", ":"), ensure_ascii=True)


def test_scala_standby_vectors(jars: Path, toolchain: Toolchain) -> None:
    """Protocol 2.1 in the Scala launcher: its registration reproduces docs/protocol-vectors-2.1.json byte for byte, one
    sealed with real randomness opens with the server's code, the vector claim opens once, and replayed, second,
    foreign (another pool, standby, claim key or nonce) and hostile claims are refused without using the standby up."""
    run = run_check(toolchain, "StandbyCheck", STANDBY_VECTORS)
    lines = run.stdout.splitlines()
    vectors = json.loads(STANDBY_VECTORS.read_text())
    wanted = ["registration line reproduced byte for byte", "a replayed claim is refused",
              "a second claim is refused, even a different one", "a claim for one standby is refused by another",
              "a claim is refused under another claim key or nonce", "hostile claim lines are refused without acting",
              *(f"reject: {case['why']}" for case in vectors["reject_claims"])]
    assert [name for name in wanted if f"ok {name}" not in lines] == [], run.stdout

    reg = vectors["registration"]
    fresh = next(line for line in lines if line.startswith("REGISTRATION ")).removeprefix("REGISTRATION ").encode()
    registration = open_registration(fresh, ServerKey.from_pem(vectors["server_private_key_pem"]),
                                     expected=lambda _sid: (reg["pool"], reg["token"]))
    assert (registration.standby_id, registration.pool, registration.pid) == (reg["standby_id"], reg["pool"], 4242)
    assert registration.claim_key == bytes.fromhex(reg["claim_key_hex"])
    assert registration.launcher.startswith("scala/")


# ------------------------------------------------------------------------------------------ a real kernel


@dataclass
class Launch:
    kernel_id: str
    proc: asyncio.subprocess.Process
    pending: PendingLaunch
    started: float
    log_path: Path
    timings: dict[str, float] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-n:])


async def start_launcher(
    broker: ResponseBroker, toolchain: Toolchain, logs: Path, *, mode: str, token: str | None = None,
    port_range: str = "0..0", run_sh: Path = RUN_SH,
) -> Launch:
    kernel_id = f"scala-launcher-{os.getpid()}-{os.urandom(3).hex()}"
    pending = broker.expect(kernel_id)
    env = launcher_env(toolchain, LAUNCH_TOKEN=token if token is not None else pending.token)
    if run_sh != RUN_SH:
        del env["TOREE_JAR"]  # an installed run.sh finds the Toree assembly in its lib/
    log_path = logs / f"{kernel_id}.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            str(run_sh), "--kernel-id", kernel_id, "--port-range", port_range,
            "--response-address", broker.response_address, "--public-key", broker.public_key,
            "--spark-context-initialization-mode", mode,
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
    return Launch(kernel_id, proc, pending, started, log_path)


def proc_file(pid: int, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


def group_members(pgid: int) -> list[int]:
    """Live processes in a process group (the launcher was started in its own session)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


async def kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        await proc.wait()


async def ready_client(info: dict[str, Any]) -> AsyncKernelClient:
    """A client that waits for kernel_info only: Toree answers heartbeats late while it starts its interpreter, and
    jupyter_client's 1 s heartbeat check would call it dead."""
    client = AsyncKernelClient()
    client.load_connection_info({**info, "ip": "127.0.0.1"})
    client.start_channels(hb=False)
    await client.wait_for_ready(timeout=READY_TIMEOUT)
    return client


async def comm(report: Report, op: str, **params: object) -> dict[str, Any]:
    assert report.comm_key is not None
    return await send_request("127.0.0.1", report.comm_port, report.comm_key, op, timeout=10.0, **params)


async def raw_comm(port: int, line: bytes) -> tuple[bytes, bytes]:
    """One comm connection driven by hand: the greeting and the reply to ``line``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        greeting = await asyncio.wait_for(reader.readline(), 10)
        writer.write(line)
        await writer.drain()
        return greeting, await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


async def interrupt_cell(client: AsyncKernelClient, report: Report, code: str, say_started: str = SAY_STARTED_SCALA
                         ) -> tuple[dict, float]:
    """Start ``code`` (``say_started`` prints STARTED first), interrupt it over the comm port once it runs; its reply
    and seconds to stop."""
    msg_id = await start_busy_cell(client, say_started + code, timeout=CELL_TIMEOUT)
    t0 = time.monotonic()
    assert await comm(report, "interrupt") == {"ok": True, "alive": True}
    reply = await collect(client, msg_id, timeout=CELL_TIMEOUT)
    return reply, time.monotonic() - t0


@dataclass
class Kernel:
    launch: Launch
    report: Report
    client: AsyncKernelClient
    first: dict[str, Any]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def broker() -> AsyncIterator[ResponseBroker]:
    b = ResponseBroker(bind_ip="127.0.0.1", advertised_ip="127.0.0.1", port=0)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kernel(
    broker: ResponseBroker, toolchain: Toolchain, jars: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Kernel]:
    """One Toree kernel with a lazily created Spark context, shared by the tests below (a start costs 10-60 s)."""
    launch = await start_launcher(broker, toolchain, tmp_path_factory.mktemp("scala"), mode="lazy",
                                  port_range=f"{PORT_RANGE[0]}..{PORT_RANGE[1]}")
    client = None
    try:
        try:
            report = await launch.pending.wait(timeout=READY_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"no report from the Scala launcher within {READY_TIMEOUT}s:\n{launch.log_tail()}")
        launch.timings["report"] = time.monotonic() - launch.started
        client = await ready_client(report.connection_info)
        first = await execute(client, "1+1")
        launch.timings["first_execute"] = time.monotonic() - launch.started
        yield Kernel(launch, report, client, first)
    finally:
        if client is not None:
            client.stop_channels()
        await kill_group(launch.proc)


@pytest.mark.asyncio(loop_scope="module")
async def test_report_is_verified(kernel: Kernel) -> None:
    report, launch = kernel.report, kernel.launch
    assert report.version == 2 and report.kernel_id == launch.kernel_id
    assert report.pid == launch.proc.pid, "run.sh execs spark-submit, which execs the JVM: the pid is the kernel's"
    assert report.pgid == launch.proc.pid
    assert report.extra.get("launcher") == f"scala/{(SCALA_DIR / 'VERSION').read_text().strip()}"
    ports = [report.connection_info[f"{n}_port"] for n in ("shell", "iopub", "stdin", "control", "hb")]
    ports.append(report.comm_port)
    assert len(set(ports)) == 6 and all(PORT_RANGE[0] <= p <= PORT_RANGE[1] for p in ports), ports
    assert report.connection_info["ip"] == "127.0.0.1"
    assert launch.pending.token.encode() not in proc_file(launch.proc.pid, "cmdline")


@pytest.mark.asyncio(loop_scope="module")
async def test_executes_scala_and_hides_the_token(kernel: Kernel) -> None:
    assert kernel.first["status"] == "ok" and kernel.first["result"] == "2", kernel.first
    leaked = await execute(kernel.client, 'sys.env.contains("LAUNCH_TOKEN")')
    assert leaked["result"] == "false", "the launch token must not be in the kernel's environment"
    environ = proc_file(kernel.launch.proc.pid, "environ")
    assert kernel.launch.pending.token.encode() not in environ
    assert await comm(kernel.report, "ping") == {"ok": True, "alive": True}


@pytest.mark.asyncio(loop_scope="module")
async def test_interrupt_before_spark_exists(kernel: Kernel) -> None:
    """Toree's interrupt touches the Spark session; the first touch must not break Spark (it did on the signal
    thread's null class loader) and the sleeping cell must stop."""
    reply, took = await interrupt_cell(kernel.client, kernel.report, "Thread.sleep(300000); 7")
    assert reply["status"] == "error" and reply["ename"] == "java.lang.InterruptedException", reply
    assert took < 90, f"the sleeping cell took {took:.1f}s to stop"
    after = await execute_after_interrupt(kernel.client, "1+2")
    assert after["result"] == "3", after


@pytest.mark.asyncio(loop_scope="module")
async def test_spark_job(kernel: Kernel) -> None:
    reply = await execute(kernel.client, "sc.parallelize(1 to 100).sum()")
    assert reply["status"] == "ok" and reply["result"] == "5050.0", reply


@pytest.mark.asyncio(loop_scope="module")
async def test_interrupt_cancels_a_spark_job(kernel: Kernel) -> None:
    code = "sc.parallelize(1 to 2, 2).map { x => Thread.sleep(300000); x }.sum()"
    # STARTED once Spark runs the job, not when the cell starts: an interrupt that lands before the job is
    # submitted stops the cell and leaves the job to run (Toree cancels the jobs running at the interrupt).
    say_started_when_job_runs = (
        "new Thread(() => { while (sc.statusTracker.getActiveJobIds().isEmpty) Thread.sleep(20); "
        f'println("{STARTED}") }}).start()\n')
    reply, took = await interrupt_cell(kernel.client, kernel.report, code, say_started_when_job_runs)
    assert reply["status"] == "error", reply
    assert took < 60, f"the Spark job took {took:.1f}s to stop"
    # Spark's status tracker learns of the cancellation through its listener bus, a moment after the cell's
    # reply: the kernel waits (30 s at most) for the job to leave the active list.
    active = await execute(kernel.client, (
        "{ val until = System.nanoTime + 30000000000L; "
        "while (sc.statusTracker.getActiveJobIds().length > 0 && System.nanoTime < until) Thread.sleep(50); "
        "sc.statusTracker.getActiveJobIds().length }"))
    assert active["result"] == "0", f"the Spark job was not cancelled: {active}"


@pytest.mark.asyncio(loop_scope="module")
async def test_hostile_comm_requests_are_refused(kernel: Kernel) -> None:
    report = kernel.report
    assert report.comm_key is not None
    unauthenticated = {"ok": False, "error": "unauthenticated"}
    greeting, answer = await raw_comm(report.comm_port, json.dumps({"signum": 9}).encode() + b"\n")
    assert json.loads(answer) == unauthenticated, "Gateway Provisioners' unauthenticated request"
    nonce = parse_greeting(greeting)
    _, answer = await raw_comm(report.comm_port, sign_request(os.urandom(32), nonce, "kill"))
    assert json.loads(answer) == unauthenticated, "wrong comm key"
    _, answer = await raw_comm(report.comm_port, sign_request(report.comm_key, nonce, "kill"))
    assert json.loads(answer) == unauthenticated, "request replayed on a new connection's nonce"
    _, answer = await raw_comm(report.comm_port, b"x" * 5000 + b"\n")
    assert json.loads(answer) == {"ok": False, "error": "request too long"}, "over-long line"
    # A client that connects and says nothing holds up no one else.
    _, silent = await asyncio.open_connection("127.0.0.1", report.comm_port)
    try:
        assert await comm(report, "ping") == {"ok": True, "alive": True}  # answered within comm's own timeout
    finally:
        silent.close()
    again = await execute(kernel.client, "1+1")
    assert again["result"] == "2", "the kernel must survive hostile requests"
    log = kernel.launch.log()  # one line per kind of refusal (rate-limited), never one per connection
    assert "refused a comm request from 127.0.0.1: unauthenticated" in log
    assert "refused a comm request from 127.0.0.1: request too long" in log


@pytest.mark.asyncio(loop_scope="module")
async def test_signal_op_reaches_a_handler_in_the_kernel(kernel: Kernel) -> None:
    """Protocol 2.2's signal op: SIGUSR1 by name is raised on the JVM, which is the kernel, so a handler a cell
    installed with sun.misc.Signal runs (the cell waiting for it ends); SIGSTOP is refused, as it would stop the comm
    port with the kernel; a number is refused; the kernel runs on."""
    installed = await execute(kernel.client, (
        "val kfGot = new java.util.concurrent.CountDownLatch(1)\n"
        'sun.misc.Signal.handle(new sun.misc.Signal("USR1"), new sun.misc.SignalHandler {\n'
        "  def handle(s: sun.misc.Signal): Unit = kfGot.countDown()\n"
        "})\n"
        '"installed"'))
    assert installed["status"] == "ok", installed
    msg_id = await start_busy_cell(kernel.client, SAY_STARTED_SCALA + (
        'println(if (kfGot.await(100, java.util.concurrent.TimeUnit.SECONDS)) "KF-GOT SIGUSR1" else "KF-TIMEOUT")'),
        timeout=CELL_TIMEOUT)
    assert await comm(kernel.report, "signal", signal="SIGUSR1") == {"ok": True, "alive": True}
    reply = await collect(kernel.client, msg_id, timeout=CELL_TIMEOUT)
    assert reply["status"] == "ok" and "KF-GOT SIGUSR1" in reply["stdout"], reply
    assert await comm(kernel.report, "signal", signal="SIGSTOP") == {
        "ok": False, "error": "signal not supported by this launcher"}
    assert await comm(kernel.report, "signal", signal=int(signal.SIGUSR1)) == {
        "ok": False, "error": "signal must be a name such as SIGUSR1"}
    assert await comm(kernel.report, "ping") == {"ok": True, "alive": True}


@pytest.mark.asyncio(loop_scope="module")
async def test_signal_op_with_toree_interrupt_signal_interrupts(kernel: Kernel) -> None:
    """SIGUSR2 is Toree's interrupt signal here (--alternate-sigint USR2): the signal op takes the interrupt's way,
    through Toree's handler with its class loader, and the sleeping cell stops as on an interrupt."""
    msg_id = await start_busy_cell(kernel.client, SAY_STARTED_SCALA + "Thread.sleep(300000); 7", timeout=CELL_TIMEOUT)
    assert await comm(kernel.report, "signal", signal="SIGUSR2") == {"ok": True, "alive": True}
    reply = await collect(kernel.client, msg_id, timeout=CELL_TIMEOUT)
    assert reply["status"] == "error" and reply["ename"] == "java.lang.InterruptedException", reply
    assert (await execute_after_interrupt(kernel.client, "1+2"))["result"] == "3"


@pytest.mark.asyncio(loop_scope="module")
async def test_shutdown_leaves_no_jvm(kernel: Kernel) -> None:
    """The server's shutdown: shutdown_request to the kernel, then comm shutdown with a grace period."""
    launch, report = kernel.launch, kernel.report
    kernel.client.shutdown()
    with contextlib.suppress(OSError):  # the JVM may already be gone when the request arrives
        reply = await comm(report, "shutdown", grace=10)
        assert reply["ok"] is True
    t0 = time.monotonic()
    await asyncio.wait_for(launch.proc.wait(), 60)
    while group_members(launch.proc.pid):
        assert time.monotonic() - t0 < 30, f"processes left behind: {group_members(launch.proc.pid)}"
        await asyncio.sleep(0.2)
    assert launch.proc.returncode == 0, launch.log_tail()
    with pytest.raises(OSError):
        await comm(report, "ping")
    log = launch.log()
    assert report.comm_key is not None
    for secret in (launch.pending.token, report.connection_info["key"].decode(),
                   base64.b64encode(report.comm_key).decode()):
        assert secret not in log, "a secret reached the launcher's log"


def installed_layout(root: Path, toolchain: Toolchain) -> Path:
    """kernel-launchers/scala/{bin/run.sh, lib/*.jar}, the layout `jupyter image-bootstrap install` writes."""
    bin_dir, lib_dir = root / "scala" / "bin", root / "scala" / "lib"
    bin_dir.mkdir(parents=True)
    lib_dir.mkdir()
    shutil.copy2(RUN_SH, bin_dir / "run.sh")
    shutil.copy2(LAUNCHER_JAR, lib_dir / LAUNCHER_JAR.name)
    (lib_dir / Path(toolchain.toree_jar).name).symlink_to(toolchain.toree_jar)
    return bin_dir / "run.sh"


@pytest.mark.asyncio(loop_scope="module")
async def test_wrong_launch_token_exits_nonzero(
    broker: ResponseBroker, toolchain: Toolchain, jars: Path, tmp_path: Path
) -> None:
    """Also runs run.sh from the installed layout, where the jars are found in ../lib."""
    wrong = "not-the-token-" + base64.urlsafe_b64encode(os.urandom(24)).decode()
    run_sh = installed_layout(tmp_path / "kernel-launchers", toolchain)
    launch = await start_launcher(broker, toolchain, tmp_path, mode="none", token=wrong, run_sh=run_sh)
    try:
        await asyncio.wait_for(launch.proc.wait(), READY_TIMEOUT)
    finally:
        await kill_group(launch.proc)
    assert launch.proc.returncode == 1, launch.log_tail()
    log = launch.log()
    assert "the response broker rejected the report" in log
    assert wrong not in log
    assert not launch.pending.done, "a forged report must leave the launch waiting"
    assert not group_members(launch.proc.pid)


@pytest.mark.asyncio(loop_scope="module")
async def test_reported_ports_cannot_be_taken(
    broker: ResponseBroker, toolchain: Toolchain, jars: Path, tmp_path: Path
) -> None:
    """A neighbour binds every reported kernel port the moment the report arrives: Toree must already hold them all.
    Before the fix the launcher released the ports and reported them before Toree had started, so the neighbour
    always won and Toree never answered."""
    launch = await start_launcher(broker, toolchain, tmp_path, mode="none")
    client = None
    try:
        async with port_thief() as thief:
            report = await launch.pending.wait(timeout=READY_TIMEOUT)
            thief.want(report.connection_info[f"{n}_port"] for n in ("shell", "iopub", "stdin", "control", "hb"))
            client = await ready_client(report.connection_info)
            reply = await execute(client, "1+1")
        assert reply["result"] == "2", reply
        assert not thief.taken, f"the neighbour took reported ports {sorted(thief.taken)}"
    finally:
        if client is not None:
            client.stop_channels()
        await kill_group(launch.proc)


@pytest.mark.asyncio(loop_scope="module")
async def test_comm_terminate_and_kill(
    broker: ResponseBroker, toolchain: Toolchain, jars: Path, tmp_path: Path
) -> None:
    """terminate exits through the shutdown hooks (143), kill halts (137); both leave nothing behind. Sent as soon as
    the report arrives."""
    launches = [await start_launcher(broker, toolchain, tmp_path, mode="none") for _ in range(2)]
    try:
        reports = await asyncio.gather(*(launch.pending.wait(timeout=READY_TIMEOUT) for launch in launches))
        for report, op in zip(reports, ("terminate", "kill"), strict=True):
            assert await comm(report, op) == {"ok": True, "alive": True}
        for launch, code in zip(launches, (143, 137), strict=True):
            await asyncio.wait_for(launch.proc.wait(), 60)
            assert launch.proc.returncode == code, launch.log_tail()
            assert not group_members(launch.proc.pid)
    finally:
        for launch in launches:
            await kill_group(launch.proc)


@pytest.mark.asyncio(loop_scope="module")
async def test_start_time_against_toree_started_directly(
    kernel: Kernel, toolchain: Toolchain, jars: Path, tmp_path: Path
) -> None:
    """Start-to-first-execute through the launcher stays close to Toree's own spark-submit (both are printed)."""
    connection_file = str(tmp_path / "direct-toree.json")
    _, info = write_connection_file(connection_file, ip="127.0.0.1")
    started = time.monotonic()
    log = (tmp_path / "direct-toree.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        str(Path(toolchain.spark_home, "bin", "spark-submit")),
        "--driver-java-options", "--add-opens=java.base/java.util.jar=ALL-UNNAMED",
        "--class", "org.apache.toree.Main", toolchain.toree_jar,
        "--profile", connection_file, "--spark-context-initialization-mode", "lazy", "--alternate-sigint", "USR2",
        env=launcher_env(toolchain), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
    )
    client = None
    try:
        client = await ready_client(info)
        reply = await execute(client, "1+1")
        assert reply["result"] == "2", reply
        direct = time.monotonic() - started
        client.shutdown()
        await asyncio.wait_for(proc.wait(), 60)
    finally:
        if client is not None:
            client.stop_channels()
        await kill_group(proc)
        log.close()
    ours = kernel.launch.timings["first_execute"]
    print(f"\nToree start to first execute: launcher {ours:.1f}s (report after {kernel.launch.timings['report']:.1f}s),"
          f" Toree started directly {direct:.1f}s", file=sys.stderr)
    # The two runs are minutes apart on a shared host; this only catches a launcher that adds a whole JVM start.
    assert ours < direct * 2 + 20, f"launcher {ours:.1f}s vs direct {direct:.1f}s"

