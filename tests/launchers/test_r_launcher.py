"""The pure-R launcher (launchers/r) against the real response broker, a real IRkernel and real signals.

The R vector script pins the wire format byte for byte; the rest drives ``Rscript launch_IRkernel.R``
the way a kernel image does and checks what the server relies on: the report verifies, the kernel
runs code, the comm port interrupts it and refuses anyone without the comm key, and every way of
ending leaves no R process behind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bench.port_contention import port_thief
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import write_connection_file
from kf_testing import start_busy_cell
from rs_testing import SAY_STARTED_R, collect, execute, execute_settled, require_r

from kernelfleet.protocol import Report, sign_request
from kernelfleet.protocol.comm import parse_greeting
from kernelfleet.protocol.comm_client import send_request
from kernelfleet.provisioners.broker import PendingLaunch, ResponseBroker

REPO = Path(__file__).resolve().parents[2]
R_LAUNCHER_DIR = REPO / "launchers" / "r"
LAUNCHER = R_LAUNCHER_DIR / "launch_IRkernel.R"
PORT_RANGE = (47000, 47999)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def rscript() -> str:
    """Rscript with IRkernel, jsonlite and openssl, or a failure that says what to install."""
    return require_r()


@pytest.fixture
async def broker() -> AsyncIterator[ResponseBroker]:
    b = ResponseBroker(bind_ip="127.0.0.1", advertised_ip="127.0.0.1", port=0)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


@dataclass
class Launch:
    kernel_id: str
    proc: asyncio.subprocess.Process
    pending: PendingLaunch
    started: float
    stderr_path: Path

    @property
    def token(self) -> str:
        return self.pending.token

    async def report(self) -> Report:
        return await self.pending.wait(timeout=60)

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")


class Launcher:
    """Starts ``Rscript launch_IRkernel.R`` like a kernelspec would; kills whatever a failed test leaves."""

    def __init__(self, rscript: str, broker: ResponseBroker, logs: Path) -> None:
        self.rscript, self.broker, self.logs = rscript, broker, logs
        self.launches: list[Launch] = []

    async def start(
        self, *, token: str | None = None, port_range: str = "0..0", drop_token: bool = False,
        response_address: str | None = None,
    ) -> Launch:
        kernel_id = f"r-launcher-{os.getpid()}-{len(self.launches)}-{os.urandom(3).hex()}"
        pending = self.broker.expect(kernel_id)
        env = {k: v for k, v in os.environ.items() if k not in ("LAUNCH_TOKEN", "KERNEL_ID", "PORT_RANGE")}
        if not drop_token:
            env["LAUNCH_TOKEN"] = token if token is not None else pending.token
        stderr_path = self.logs / f"{kernel_id}.stderr"
        started = time.monotonic()
        with stderr_path.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                self.rscript, str(LAUNCHER),
                "--kernel-id", kernel_id, "--port-range", port_range,
                "--response-address", response_address or self.broker.response_address,
                "--public-key", self.broker.public_key,
                "--spark-context-initialization-mode", "none",
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                start_new_session=True,  # its own process group, as a provisioner starts it
            )
        launch = Launch(kernel_id, proc, pending, started, stderr_path)
        self.launches.append(launch)
        return launch

    async def cleanup(self) -> None:
        for launch in self.launches:
            for pid in processes_of(launch.kernel_id):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if launch.proc.returncode is None:
                await launch.proc.wait()


@pytest.fixture
async def launcher(rscript: str, broker: ResponseBroker, tmp_path: Path) -> AsyncIterator[Launcher]:
    launcher = Launcher(rscript, broker, tmp_path)
    try:
        yield launcher
    finally:
        await launcher.cleanup()


def command_line(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def processes_of(kernel_id: str) -> list[int]:
    """Live (non-zombie) processes whose command line names this kernel: the kernel and its listener."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if kernel_id.encode() in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


async def wait_all_gone(launch: Launch, timeout: float) -> float:
    """Seconds until the launcher exited and no process of its kernel is left; fails naming the survivors."""
    t0 = time.monotonic()
    await asyncio.wait_for(launch.proc.wait(), timeout)
    while processes_of(launch.kernel_id):
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"kernel {launch.kernel_id}: processes left behind: {processes_of(launch.kernel_id)}")
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


async def connect(report: Report) -> AsyncKernelClient:
    info = dict(report.connection_info)
    info["ip"] = "127.0.0.1"
    return await ready_client(info)


async def ready_client(info: dict[str, object]) -> AsyncKernelClient:
    """A client that waits for kernel_info only: IRkernel answers heartbeats from the same loop as
    requests, so on a loaded host jupyter_client's 1 s heartbeat check calls a busy kernel dead."""
    client = AsyncKernelClient()
    client.load_connection_info(info)
    client.start_channels(hb=False)
    await client.wait_for_ready(timeout=90)
    return client


async def comm(report: Report, op: str, **params: object) -> dict[str, object]:
    assert report.comm_key is not None
    return await send_request("127.0.0.1", report.comm_port, report.comm_key, op, timeout=5.0, **params)


async def raw_comm(port: int, line: bytes | None) -> tuple[bytes, bytes]:
    """One comm connection driven by hand: returns the greeting and the reply to ``line``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        greeting = await asyncio.wait_for(reader.readline(), 5)
        if line is None:
            return greeting, b""
        writer.write(line)
        await writer.drain()
        return greeting, await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


# ------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize(
    ("script", "vectors"),
    [
        ("test_vectors.R", "protocol-vectors.json"),
        ("test_config.R", None),
        ("test_contract.R", "launcher-vectors.json"),
        ("test_standby.R", "protocol-vectors-2.1.json"),
    ],
)
def test_r_unit_scripts(rscript: str, script: str, vectors: str | None) -> None:
    """test_vectors.R reproduces docs/protocol-vectors.json byte for byte; test_config.R covers inputs and ports;
    test_contract.R runs docs/launcher-vectors.json's argv/environment cases and compares retries and timeouts;
    test_standby.R reproduces docs/protocol-vectors-2.1.json's registration and refuses its foreign claims."""
    run = subprocess.run(
        [rscript, str(R_LAUNCHER_DIR / "tests" / script), *([str(REPO / "docs" / vectors)] if vectors else [])],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, f"{script} failed:\n{run.stdout}\n{run.stderr}"
    assert run.stdout.rstrip().endswith(" 0 failed"), run.stdout
    assert "FAIL" not in run.stdout
    if script == "test_vectors.R":
        assert "ok    report line reproduced byte for byte" in run.stdout
        assert "ok    signal vectors: accepted SIGUSR1" in run.stdout
        assert "ok    signal vectors: refused a raw signal number (numbers differ across platforms)" in run.stdout
    if script == "test_contract.R":
        assert "ok    resolves: an option wins over its variable" in run.stdout
        assert "ok    port range refused: plus sign" in run.stdout
    if script == "test_standby.R":
        assert "ok    registration line reproduced byte for byte" in run.stdout
        assert "ok    replayed claim refused" in run.stdout


async def test_kernel_lifecycle(launcher: Launcher) -> None:
    launch = await launcher.start(port_range=f"{PORT_RANGE[0]}..{PORT_RANGE[1]}")
    report = await launch.report()
    assert report.version == 2
    assert report.pid == launch.proc.pid, "the reported pid must be the kernel's (the launcher process itself)"
    assert report.pgid == os.getpgid(launch.proc.pid) == launch.proc.pid
    assert report.extra.get("launcher") == f"r/{(R_LAUNCHER_DIR / 'VERSION').read_text().strip()}"
    ports = [report.connection_info[f"{n}_port"] for n in ("shell", "iopub", "stdin", "control", "hb")]
    ports.append(report.comm_port)
    assert len(set(ports)) == 6 and all(PORT_RANGE[0] <= p <= PORT_RANGE[1] for p in ports), ports
    assert launch.token.encode() not in command_line(launch.proc.pid)
    assert report.comm_key is not None

    client = await connect(report)
    try:
        first = await execute(client, "1+1")
        assert first["status"] == "ok" and first["result"] == "[1] 2", first
        print(f"\nR launcher: start to first execute {time.monotonic() - launch.started:.2f} s", file=sys.stderr)

        # The kernel's users cannot read the launch token: the launcher removed it from the environment.
        leaked = await execute(client, 'cat(nzchar(Sys.getenv("LAUNCH_TOKEN")))')
        assert leaked["stdout"] == "FALSE"
        assert await comm(report, "ping") == {"ok": True, "alive": True}

        # Interrupt a sleeping cell, then a busy loop, through the comm port.
        for code in ("Sys.sleep(30)", "repeat { x <- sqrt(2) }"):
            msg_id = await start_busy_cell(client, SAY_STARTED_R + code)
            assert await comm(report, "interrupt") == {"ok": True, "alive": True}
            # Until the cell's idle status: IRkernel aborts whatever request arrives before it (collect waits).
            reply = await collect(client, msg_id, timeout=20)  # well before Sys.sleep(30) ends by itself
            assert reply["status"] in ("abort", "aborted", "error"), reply
            after = await execute_settled(client, "1+1")
            assert after["status"] == "ok" and after["result"] == "[1] 2", after

        # SIGINT to the whole process group (what a local interrupt does) reaches the listener too: it
        # must interrupt the kernel's cell and leave the listener serving.
        msg_id = await start_busy_cell(client, SAY_STARTED_R + "Sys.sleep(30)")
        assert report.pgid is not None
        os.killpg(report.pgid, signal.SIGINT)
        reply = await collect(client, msg_id, timeout=20)
        assert reply["status"] == "abort", reply
        assert await comm(report, "ping") == {"ok": True, "alive": True}
        assert len(processes_of(launch.kernel_id)) == 2, "the listener must survive the group's SIGINT"

        # Hostile comm requests are refused and never acted on.
        greeting, answer = await raw_comm(report.comm_port, json.dumps({"signum": 9}).encode() + b"\n")
        assert json.loads(answer) == {"ok": False, "error": "unauthenticated"}, "GP's unauthenticated request"
        nonce = parse_greeting(greeting)
        _, answer = await raw_comm(report.comm_port, sign_request(os.urandom(32), nonce, "kill"))
        assert json.loads(answer) == {"ok": False, "error": "unauthenticated"}, "wrong comm key"
        _, answer = await raw_comm(report.comm_port, sign_request(report.comm_key, nonce, "kill"))
        assert json.loads(answer) == {"ok": False, "error": "unauthenticated"}, "request replayed on a new nonce"
        _, answer = await raw_comm(report.comm_port, b"x" * 5000 + b"\n")
        assert json.loads(answer)["ok"] is False, "over-long line"
        # A client that connects and says nothing holds up no one else.
        _, silent_writer = await asyncio.open_connection("127.0.0.1", report.comm_port)
        assert await comm(report, "ping") == {"ok": True, "alive": True}  # answered within comm's own timeout
        silent_writer.close()
        again = await execute(client, "1+1")
        assert again["status"] == "ok" and again["result"] == "[1] 2", "kernel must survive the hostile requests"

        # Shut down the way the server does: comm shutdown (with a grace period) and the kernel's shutdown_request.
        assert await comm(report, "shutdown", grace=10) == {"ok": True, "alive": True}
        client.shutdown()
        await wait_all_gone(launch, timeout=30)
        assert launch.proc.returncode == 0
    finally:
        client.stop_channels()
    stderr = launch.stderr_text()
    assert "refused a comm request" in stderr
    for secret in (launch.token, report.connection_info["key"].decode(), base64.b64encode(report.comm_key).decode()):
        assert secret not in stderr, "a secret reached the launcher's log"


@pytest.mark.parametrize("port_range", ["0..0", f"{PORT_RANGE[0]}..{PORT_RANGE[1]}"])
async def test_reported_ports_cannot_be_taken(launcher: Launcher, port_range: str) -> None:
    """A neighbour binds every reported kernel port the moment the report arrives: the kernel must already hold
    them all. Before the fix IRkernel bound them only after the report, so the neighbour always won and the kernel
    ran deaf (pbdZMQ only warns when a bind fails)."""
    launch = await launcher.start(port_range=port_range)
    async with port_thief() as thief:
        report = await launch.report()
        thief.want(report.connection_info[f"{n}_port"] for n in ("shell", "iopub", "stdin", "control", "hb"))
        client = await connect(report)
        try:
            reply = await execute(client, "1+1")
        finally:
            client.stop_channels()
    assert reply["status"] == "ok" and reply["result"] == "[1] 2", reply
    assert not thief.taken, f"the neighbour took reported ports {sorted(thief.taken)}"


async def test_comm_shutdown_stops_a_kernel_that_does_not_exit(launcher: Launcher) -> None:
    """comm shutdown alone: after the grace period the listener terminates the kernel, then exits itself."""
    launch = await launcher.start()
    report = await launch.report()
    client = await connect(report)
    client.stop_channels()
    assert len(processes_of(launch.kernel_id)) == 2, "expected the kernel and its comm listener"
    t0 = time.monotonic()
    assert await comm(report, "shutdown", grace=1) == {"ok": True, "alive": True}
    await wait_all_gone(launch, timeout=30)
    assert time.monotonic() - t0 > 0.9  # the grace was given
    assert launch.proc.returncode == -signal.SIGTERM


async def test_sigterm_to_the_launcher_ends_everything(launcher: Launcher) -> None:
    launch = await launcher.start()
    report = await launch.report()
    client = await connect(report)
    client.stop_channels()
    launch.proc.send_signal(signal.SIGTERM)
    assert await wait_all_gone(launch, timeout=10) < 5
    with pytest.raises(OSError):
        await comm(report, "ping")


async def test_comm_kill(launcher: Launcher) -> None:
    launch = await launcher.start()
    report = await launch.report()
    assert (await comm(report, "kill"))["ok"] is True
    assert await wait_all_gone(launch, timeout=10) < 5
    assert launch.proc.returncode == -signal.SIGKILL


async def test_comm_signal_reaches_the_r_kernel(launcher: Launcher) -> None:
    """Protocol 2.2's signal op: SIGHUP by name reaches the R kernel itself (R ends on it, status -SIGHUP), not its
    comm listener, which answers first and then goes with the kernel; a number is refused and changes nothing."""
    launch = await launcher.start()
    report = await launch.report()
    assert await comm(report, "signal", signal=int(signal.SIGHUP)) == {
        "ok": False, "error": "signal must be a name such as SIGUSR1"}
    assert await comm(report, "signal", signal="SIGKILL") == {"ok": False, "error": "signal not allowed"}
    assert (await comm(report, "ping"))["alive"] is True
    assert (await comm(report, "signal", signal="SIGHUP"))["ok"] is True
    await wait_all_gone(launch, timeout=30)
    assert launch.proc.returncode == -signal.SIGHUP


async def test_wrong_launch_token_is_rejected(launcher: Launcher) -> None:
    wrong = "not-the-token-" + base64.urlsafe_b64encode(os.urandom(24)).decode()
    launch = await launcher.start(token=wrong)
    await wait_all_gone(launch, timeout=60)
    assert launch.proc.returncode == 1
    stderr = launch.stderr_text()
    assert "the server rejected the launch report" in stderr
    assert wrong not in stderr
    assert not launch.pending.done, "a forged report must leave the launch waiting"


async def test_unreachable_server(launcher: Launcher) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    launch = await launcher.start(response_address=f"127.0.0.1:{closed_port}")
    await wait_all_gone(launch, timeout=60)
    assert launch.proc.returncode == 1
    assert f"cannot reach the response address 127.0.0.1:{closed_port}" in launch.stderr_text()


async def test_missing_launch_token(launcher: Launcher) -> None:
    launch = await launcher.start(drop_token=True)
    await wait_all_gone(launch, timeout=30)
    assert launch.proc.returncode == 1
    assert "LAUNCH_TOKEN is required in the environment" in launch.stderr_text()


async def test_start_time_against_a_bare_irkernel(launcher: Launcher, rscript: str, tmp_path: Path) -> None:
    """Start-to-first-execute of the launcher stays close to a bare ``IRkernel::main()`` (both are printed)."""

    async def first_execute(info: dict[str, object], started: float) -> float:
        client = await ready_client(info)
        try:
            reply = await execute(client, "1+1")
            assert reply["result"] == "[1] 2"
            took = time.monotonic() - started
            client.shutdown()
            return took
        finally:
            client.stop_channels()

    connection_file = str(tmp_path / "bare-kernel.json")
    _, info = write_connection_file(connection_file, ip="127.0.0.1")
    bare_log = tmp_path / "bare-kernel.stderr"
    started = time.monotonic()
    with bare_log.open("wb") as stderr:
        bare = await asyncio.create_subprocess_exec(
            rscript, "-e", f"IRkernel::main({json.dumps(connection_file)})",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    try:
        try:
            bare_time = await first_execute(info, started)
        except RuntimeError as err:
            raise AssertionError(f"bare IRkernel did not start: {err}; its stderr: {bare_log.read_text()}") from None
        await asyncio.wait_for(bare.wait(), 10)
    finally:
        if bare.returncode is None:
            bare.kill()
            await bare.wait()

    launch = await launcher.start()
    launcher_time = await first_execute({**(await launch.report()).connection_info, "ip": "127.0.0.1"}, launch.started)
    await wait_all_gone(launch, timeout=10)
    print(f"\nstart to first execute: bare IRkernel {bare_time:.2f} s, Kernel Fleet R launcher {launcher_time:.2f} s",
          file=sys.stderr)
    assert launcher_time < bare_time * 1.5 + 2.0, f"launcher {launcher_time:.2f}s vs bare {bare_time:.2f}s"
