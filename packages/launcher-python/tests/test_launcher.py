"""The real launcher, as a subprocess, against the real ResponseBroker and a real IPython kernel."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from kf_testing import STARTED, interrupted_reply, start_busy_cell
from launcher_support import (
    LAUNCHER_PYTHON,
    Launcher,
    kernel_processes,
    launcher_processes,
    process_running,
    wait_gone,
)

from kernelfleet.launcher import __version__
from kernelfleet.launcher.connfile import connection_info, new_hmac_key, remove_connection_file, write_connection_file
from kernelfleet.protocol.comm import comm_mac
from kernelfleet.protocol.encoding import b64encode, dumps_line
from kernelfleet.provisioners.broker import ResponseBroker

VECTORS = json.loads((Path(__file__).parents[3] / "docs" / "protocol-vectors.json").read_text())


async def execute(kc: Any, code: str, timeout: float = 20.0) -> tuple[dict[str, Any], str]:
    """Run ``code``; return the execute_reply content and everything printed to stdout."""
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])

    reply = await kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply["content"], "".join(out)


def signed(comm_key: bytes, nonce: bytes, body: dict[str, Any]) -> bytes:
    """A correctly MACed request line for any body, including ones no honest server would send."""
    request = json.dumps(body, separators=(",", ":"))
    return dumps_line({"request": request, "mac": b64encode(comm_mac(comm_key, nonce, request.encode()))})


async def raw_exchange(port: int, line: bytes | None, *, read_timeout: float = 8.0) -> tuple[bytes, bytes]:
    """Open a comm connection, read the greeting, send ``line``, and return (greeting, everything answered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        greeting = await asyncio.wait_for(reader.readline(), 5)
        if line is not None:
            writer.write(line)
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), read_timeout)
    except (ConnectionResetError, BrokenPipeError):
        answer = b""
    finally:
        writer.close()
    return greeting, answer


def nonce_of(greeting: bytes) -> bytes:
    return base64.b64decode(json.loads(greeting)["nonce"])


# ------------------------------------------------------------------------------------------ lifecycle


async def test_execute_interrupt_ping_and_shutdown(launcher: Launcher) -> None:
    launch = await launcher({"LOG_LEVEL": "DEBUG"})
    report = launch.report
    assert report is not None
    assert report.pid == launch.proc.pid
    assert report.extra["launcher"] == f"python/{__version__}"
    assert report.connection_info["ip"] == "127.0.0.1"  # KERNEL_IP 0.0.0.0: the address that reached the broker
    assert process_running(launch.kernel_pid)
    assert os.getpgid(launch.kernel_pid) == launch.kernel_pid != os.getpgid(launch.proc.pid)

    assert kernel_processes(launch.kernel_id) == [launch.kernel_pid]
    kc = await launch.client()
    assert list(launch.tmpdir.iterdir()) == []  # the kernel deleted its connection file once bound
    content, out = await execute(kc, "import os\nx = 6 * 7\nprint(x, 'LAUNCH_TOKEN' in os.environ)")
    assert content["status"] == "ok" and out.strip() == "42 False"

    # The interrupt goes only once the cell printed that its loop runs (kf_testing.start_busy_cell says why):
    # execute_input is published before the cell's code starts, and a SIGINT landing in between, or in a print's
    # flush, hits ipykernel's own machinery instead of the cell, which can break its stdout (the '' == '43' flake).
    msg_id = await start_busy_cell(kc, f"print({STARTED!r})\nwhile True:\n    pass")
    assert await launch.comm("interrupt") == {"ok": True, "alive": True}
    await interrupted_reply(kc, msg_id)

    assert await launch.comm("ping") == {"ok": True, "alive": True}
    content, out = await execute(kc, "print(x + 1)")
    if content["status"] == "aborted":  # ipykernel aborts what reaches it in its stop-on-error window; once only
        content, out = await execute(kc, "print(x + 1)")
    assert content["status"] == "ok" and out.strip() == "43", content

    kc.shutdown()
    assert (await launch.comm("shutdown", grace=5))["ok"] is True
    assert await launch.wait_exit(10) == 0
    assert await wait_gone(launch.kernel_pid, 2)
    assert kernel_processes(launch.kernel_id) == []
    assert list(launch.tmpdir.iterdir()) == []
    with pytest.raises(OSError):
        await launch.comm("ping")

    log = launch.stderr
    for secret in (launch.pending.token, report.connection_info["key"].decode(), b64encode(report.comm_key or b"")):
        assert secret not in log
    for step in ("ports chosen", "kernel started", "report accepted", "interrupted", "stopped"):
        assert step in log


async def test_sigterm_stops_kernel_and_launcher(launcher: Launcher) -> None:
    """How fast is tools/bench/stop_latency.py's business (target: within a second); here, that it happens."""
    launch = await launcher()
    await launch.client()
    launch.proc.send_signal(signal.SIGTERM)
    status = await launch.wait_exit(30)
    assert await wait_gone(launch.kernel_pid, 30)
    assert status == 128 + signal.SIGTERM
    assert kernel_processes(launch.kernel_id) == []
    assert list(launch.tmpdir.iterdir()) == []


def zombie_children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [c for c in children if Path(f"/proc/{c}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"]


async def test_as_pid_1_it_reaps_orphans_and_stops_on_sigterm(launcher: Launcher) -> None:
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to run the launcher as PID 1 of a PID namespace"
    launch = await launcher(prefix=[unshare, "--pid", "--fork", "--kill-child", "--mount-proc"])
    assert launch.report is not None and launch.report.pid == 1
    await launch.comm("ping")  # answered by the long-lived supervisor only: the exec after the report is done
    (supervisor,) = [p for p in launcher_processes(launch.kernel_id) if os.readlink(f"/proc/{p}/exe") != unshare]
    kc = await launch.client()
    # `sleep` outlives its shell, is orphaned to PID 1 and exits 0.2 s later: PID 1 must reap it.
    content, _ = await execute(kc, "import subprocess\nsubprocess.run(['sh', '-c', 'sleep 0.2 &'])")
    assert content["status"] == "ok"
    await asyncio.sleep(1.0)
    assert zombie_children(supervisor) == []
    os.kill(supervisor, signal.SIGTERM)
    assert await wait_gone(supervisor, 30)
    await launch.wait_exit(30)
    assert kernel_processes(launch.kernel_id) == []


async def test_sigkill_of_the_launcher_takes_the_kernel_along(launcher: Launcher) -> None:
    launch = await launcher()
    launch.proc.send_signal(signal.SIGKILL)
    await launch.wait_exit(5)
    assert await wait_gone(launch.kernel_pid, 5)


async def test_comm_kill_ends_the_launcher_with_the_kernels_status(launcher: Launcher) -> None:
    launch = await launcher()
    await launch.client()
    assert (await launch.comm("kill"))["ok"] is True
    assert await launch.wait_exit(5) == 128 + signal.SIGKILL
    assert kernel_processes(launch.kernel_id) == []
    assert list(launch.tmpdir.iterdir()) == []


async def test_comm_shutdown_terminates_a_kernel_that_stays_up(launcher: Launcher) -> None:
    launch = await launcher()
    await launch.client()
    started = time.monotonic()
    assert await launch.comm("shutdown", grace=0.5) == {"ok": True, "alive": True}
    assert await launch.wait_exit(30) == 128 + signal.SIGTERM  # no shutdown_request came: SIGTERM after the grace
    assert time.monotonic() - started >= 0.5  # the grace was given
    assert kernel_processes(launch.kernel_id) == []


async def test_rejected_report_stops_the_kernel(launcher: Launcher) -> None:
    launch = await launcher({"LAUNCH_TOKEN": "not-the-token-the-server-made"}, wait_report=False)
    status = await launch.wait_exit(30)
    assert status != 0
    assert "refused the report" in launch.stderr
    assert kernel_processes(launch.kernel_id) == []
    assert list(launch.tmpdir.iterdir()) == []
    assert not launch.pending.done  # the real launch is still waiting: a forged report changes nothing


def test_connection_file_is_private_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    tempfile.tempdir = None  # tempfile caches the directory; make it read TMPDIR again
    try:
        info = connection_info("0.0.0.0", [1, 2, 3, 4, 5], new_hmac_key())
        path = Path(write_connection_file(info))
    finally:
        tempfile.tempdir = None
    assert path.parent.parent == tmp_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == info and len(info["key"]) == 64 and info["shell_port"] == 1
    assert new_hmac_key() != info["key"]
    remove_connection_file(str(path))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ comm port


async def test_hostile_comm_requests_are_refused_and_the_kernel_lives(launcher: Launcher) -> None:
    launch = await launcher()
    assert launch.report is not None and launch.report.comm_key is not None
    port, key = launch.report.comm_port, launch.report.comm_key
    # A peer that connects and says nothing is cut off by the per-connection deadline.
    silent = asyncio.ensure_future(raw_exchange(port, None))
    silent_started = time.monotonic()

    greeting, answer = await raw_exchange(port, signed(os.urandom(32), b"\0" * 32, {"op": "kill"}))
    assert json.loads(greeting)["version"] == 2
    assert json.loads(answer) == {"ok": False, "error": "unauthenticated"}

    # Bad MAC on the right nonce: reading the nonce is not enough without the key.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    nonce = nonce_of(await reader.readline())
    writer.write(signed(os.urandom(32), nonce, {"op": "kill"}))
    assert json.loads(await reader.readline()) == {"ok": False, "error": "unauthenticated"}
    writer.close()

    # A valid request, recorded and replayed on a new connection.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    nonce = nonce_of(await reader.readline())
    recorded = signed(key, nonce, {"op": "terminate"})
    writer.write(signed(key, nonce, {"op": "ping"}))
    assert json.loads(await reader.readline()) == {"ok": True, "alive": True}
    writer.close()
    _, answer = await raw_exchange(port, recorded)
    assert json.loads(answer)["ok"] is False

    # Garbage, an oversized line, an unknown op and a raw signal number, even when correctly MACed.
    _, answer = await raw_exchange(port, b"GET / HTTP/1.0\r\n\r\n")
    assert json.loads(answer)["ok"] is False
    _, answer = await raw_exchange(port, b"{" + b"A" * (1024 * 1024) + b"}\n")
    assert answer == b"" or json.loads(answer)["ok"] is False
    for body in ({"op": "signal", "signum": 9}, {"signum": 9}, {"shutdown": 1}, {"op": "shutdown", "grace": "soon"}):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        nonce = nonce_of(await reader.readline())
        writer.write(signed(key, nonce, body))
        assert json.loads(await reader.readline())["ok"] is False, body
        writer.close()

    # The vectors' request signed for another nonce (with the vectors' key, then with the real one).
    vector = next(v for v in VECTORS["reject"] if "comm_line" in v)
    _, answer = await raw_exchange(port, vector["comm_line"].encode() + b"\n")
    assert json.loads(answer) == {"ok": False, "error": "unauthenticated"}
    other_nonce = bytes.fromhex(VECTORS["comm"]["nonce_hex"])
    _, answer = await raw_exchange(port, signed(key, other_nonce, {"op": "kill"}))
    assert json.loads(answer) == {"ok": False, "error": "unauthenticated"}

    greeting, answer = await silent
    assert greeting and answer == b""
    assert time.monotonic() - silent_started > 4.0  # dropped only after its time to speak ran out

    assert await launch.comm("ping") == {"ok": True, "alive": True}
    kc = await launch.client()
    content, out = await execute(kc, "print('still here')")
    assert content["status"] == "ok" and out.strip() == "still here"
    assert launch.proc.returncode is None


# ------------------------------------------------------------------------------------------ inputs


async def test_port_range_is_honoured(launcher: Launcher) -> None:
    lower = 20000 + (os.getpid() % 200) * 100
    upper = lower + 999
    launch = await launcher({"PORT_RANGE": f"{lower}..{upper}"})
    assert launch.report is not None
    ports = [launch.report.connection_info[f"{n}_port"] for n in ("shell", "iopub", "stdin", "control", "hb")]
    ports.append(launch.report.comm_port)
    assert len(set(ports)) == 6 and all(lower <= p <= upper for p in ports), ports
    await launch.client()


async def test_custom_kernel_class(launcher: Launcher) -> None:
    launch = await launcher(args=["--kernel-class-name", "custom_kernel.MarkedKernel"])
    kc = await launch.client()
    assert kc.kernel_info_reply["content"]["implementation"] == "kernelfleet-test-kernel"
    content, out = await execute(kc, "print(type(get_ipython().kernel).__name__)")
    assert content["status"] == "ok" and out.strip() == "MarkedKernel"


async def test_unimportable_kernel_class_fails_the_launch(launcher: Launcher) -> None:
    launch = await launcher({"KERNEL_CLASS_NAME": "no_such_module.Kernel"}, wait_report=False)
    assert await launch.wait_exit(30) != 0
    assert "cannot import kernel class 'no_such_module.Kernel'" in launch.stderr
    assert kernel_processes(launch.kernel_id) == []
    assert list(launch.tmpdir.iterdir()) == []


def run_launcher(env: dict[str, str | None], *args: str) -> tuple[int, str]:
    full = dict(os.environ)
    for key, value in env.items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    import subprocess

    done = subprocess.run(
        [LAUNCHER_PYTHON, "-m", "kernelfleet.launcher", *args], env=full, capture_output=True, text=True, timeout=30
    )
    return done.returncode, done.stderr + done.stdout


@pytest.mark.parametrize(
    ("change", "args", "named"),
    [
        ({"LAUNCH_TOKEN": None}, [], "LAUNCH_TOKEN"),
        ({"KERNEL_ID": None}, [], "KERNEL_ID"),
        ({"KERNEL_ID": "../kernel"}, [], "KERNEL_ID"),
        ({"KERNEL_ID": "a\nb"}, [], "KERNEL_ID"),
        ({"RESPONSE_ADDRESS": None}, [], "RESPONSE_ADDRESS"),
        ({"RESPONSE_ADDRESS": "no-port"}, [], "RESPONSE_ADDRESS"),
        ({"PUBLIC_KEY": None}, [], "PUBLIC_KEY"),
        ({"PORT_RANGE": "5..10"}, [], "PORT_RANGE"),
        ({}, ["--port-range", "40000-41000"], "PORT_RANGE"),
        ({"KERNEL_SPARK_CONTEXT_INIT_MODE": "sometimes"}, [], "KERNEL_SPARK_CONTEXT_INIT_MODE"),
        ({}, ["--cluster-type", "hadoop"], "KERNEL_CLUSTER_TYPE"),
        ({"KERNEL_IP": "not-an-ip"}, [], "KERNEL_IP"),
        ({"LOG_LEVEL": "LOUD"}, [], "LOG_LEVEL"),
        ({}, ["--kernel-class-name", "nodots"], "KERNEL_CLASS_NAME"),
        ({}, ["--no-such-option"], "unrecognized arguments"),
        ({}, ["--launch-token=secret-token-value", "secret-token-value"], "--launch-token"),
    ],
)
def test_missing_or_invalid_input_is_one_clear_line(change: dict[str, str | None], args: list[str], named: str) -> None:
    kernel_id = f"bad-input-{os.getpid()}-{time.monotonic_ns()}"
    env: dict[str, str | None] = {
        "KERNEL_ID": kernel_id,
        "RESPONSE_ADDRESS": "127.0.0.1:9",
        "PUBLIC_KEY": "AAAA",
        "LAUNCH_TOKEN": "secret-token-value",
        **change,
    }
    status, stderr = run_launcher(env, *args)
    assert status == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kernelfleet-launcher: error:") and named in lines[0], stderr
    assert "secret-token-value" not in stderr
    assert kernel_processes(kernel_id) == []  # the kernel process spawned first was ended, not left to finish


def test_help_exits_cleanly() -> None:
    kernel_id = f"help-{os.getpid()}"
    status, _ = run_launcher({"KERNEL_ID": kernel_id}, "--help")
    assert status == 0
    assert kernel_processes(kernel_id) == []


async def test_bad_public_key_and_kernel_id_are_clear_errors(broker: ResponseBroker) -> None:
    base = {
        "RESPONSE_ADDRESS": broker.response_address,
        "PUBLIC_KEY": broker.public_key,
        "LAUNCH_TOKEN": "secret-token-value",
    }
    unique = f"{os.getpid()}-{time.monotonic_ns()}"
    cases = [
        ({"KERNEL_ID": f"bad-key-{unique}", "PUBLIC_KEY": "bm90LWEta2V5"}, "PUBLIC_KEY", f"bad-key-{unique}"),
        ({"KERNEL_ID": f"-dash-{unique}"}, "KERNEL_ID", f"-dash-{unique}"),
    ]
    results = await asyncio.gather(*(asyncio.to_thread(run_launcher, {**base, **c}) for c, _, _ in cases))
    for (_, named, kernel_id), (status, stderr) in zip(cases, results, strict=True):
        assert status == 2, stderr
        errors = [line for line in stderr.splitlines() if line.startswith("kernelfleet-launcher: error:")]
        assert len(errors) == 1 and named in errors[0], stderr
        assert kernel_processes(kernel_id) == []
