"""End to end: the installed bootstrap-kernel.sh execs the real Python, R or Scala launcher, which
reports to a real ResponseBroker, runs a real kernel, and stops when asked over its comm port."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.asynchronous.client import AsyncKernelClient

from kernelfleet.bootstrap.install import SCRIPT_NAME
from kernelfleet.protocol.comm_client import send_request
from kernelfleet.provisioners.broker import ResponseBroker

EnvMaker = Callable[..., dict[str, str]]
CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def proc_cmdline(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:  # procfs: never blocks
        return handle.read().split(b"\0")


def spark_home() -> str:
    """Spark for Toree: the pyspark package ships bin/spark-submit."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("pyspark is not installed: the Scala launcher needs Spark (pip install pyspark)")
    return str(next(iter(spec.submodule_search_locations)))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def execute(info: dict[str, Any], code: str, ready_timeout: float) -> str:
    """Run `code` on the kernel through its reported connection info; returns what it printed."""
    client = AsyncKernelClient()
    client.load_connection_info(info)
    client.start_channels(hb=False)  # a kernel still starting up would count as dead after 1 s without beats
    results: list[str] = []

    def collect(msg: dict[str, Any]) -> None:
        if msg["msg_type"] in ("execute_result", "display_data"):
            results.append(msg["content"]["data"]["text/plain"])
        elif msg["msg_type"] == "stream":
            results.append(msg["content"]["text"])

    try:
        await client.wait_for_ready(timeout=ready_timeout)
        reply = await client.execute_interactive(code, timeout=ready_timeout, output_hook=collect)
        assert reply["content"]["status"] == "ok"
        if not results:  # Toree can publish a first cell's output after the cell's idle status
            await late_output(client, reply["parent_header"]["msg_id"], collect, results)
        return "".join(results)
    finally:
        client.stop_channels()


async def late_output(
    client: AsyncKernelClient, msg_id: str, collect: Callable[[dict[str, Any]], None], results: list[str],
    wait: float = 10.0,
) -> None:
    """Collect output of ``msg_id`` that arrives after its idle status, until some has come or ``wait`` ends."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            while not results:
                msg = await client.get_iopub_msg()
                if msg["parent_header"].get("msg_id") == msg_id:
                    collect(msg)


@pytest.mark.asyncio
@pytest.mark.timeout(420)
@pytest.mark.parametrize(
    ("language", "launcher_arg", "code"),
    [
        ("Python", b"kernelfleet.launcher", "print(6 * 7)"),
        ("R", b"launch_IRkernel.R", "cat(6 * 7)"),
        ("Scala", b"kernelfleet.toree.ToreeLauncher", "println(6 * 7)"),
    ],
)
async def test_bootstrap_execs_launcher_and_reports(
    tmp_path: Path, clean_env: EnvMaker, run_cli: CliRunner, language: str, launcher_arg: bytes, code: str
) -> None:
    installed = tmp_path / "bin"
    result = await asyncio.to_thread(run_cli, "install", "--languages", language, "--install-dir", str(installed))
    assert result.returncode == 0, result.stderr
    broker = ResponseBroker(bind_ip="127.0.0.1", advertised_ip="127.0.0.1", port=0)
    await broker.start()
    kernel_id = str(uuid.uuid4())
    pending = broker.expect(kernel_id)
    env = clean_env(
        KERNEL_ID=kernel_id,
        KERNEL_LANGUAGE=language,
        RESPONSE_ADDRESS=broker.response_address,
        PUBLIC_KEY=broker.public_key,
        LAUNCH_TOKEN=pending.token,
        KERNEL_IP="127.0.0.1",
    )
    if language == "Scala":
        env["SPARK_HOME"] = spark_home()
    log = tmp_path / "kernel.log"
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            str(installed / SCRIPT_NAME), env=env, stdout=sink, stderr=asyncio.subprocess.STDOUT
        )
    kernel_pid: int | None = None
    try:
        try:
            report = await pending.wait(timeout=120 if language == "Scala" else 30)
        except Exception:
            pytest.fail(f"no valid report from the launcher; its output:\n{log.read_text(errors='replace')}")

        # bash exec'd the launcher: the process we started *is* the launcher now
        cmdline = proc_cmdline(proc.pid)
        assert any(launcher_arg in arg for arg in cmdline), cmdline
        assert pending.token.encode() not in b" ".join(cmdline)

        assert report.kernel_id == kernel_id
        assert report.version == 2
        info = report.connection_info
        ports = [info[name] for name in ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")]
        assert len({*ports, report.comm_port}) == 6
        assert report.comm_key
        kernel_pid = report.pid
        assert kernel_pid is not None and pid_alive(kernel_pid)

        slow = language == "Scala"  # the JVM, Spark and Toree's interpreters take a while to come up
        assert (await execute(info, code, ready_timeout=150 if slow else 30)).strip() == "42"
        reply = await send_request("127.0.0.1", report.comm_port, report.comm_key, "ping", timeout=5.0)
        assert reply == {"ok": True, "alive": True}

        reply = await send_request("127.0.0.1", report.comm_port, report.comm_key, "kill", timeout=5.0)
        assert reply["ok"] is True
        await asyncio.wait_for(proc.wait(), timeout=30)
        assert not pid_alive(proc.pid)
        assert not pid_alive(kernel_pid)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await broker.stop()

    output = log.read_text(errors="replace")
    assert pending.token not in output, "the launch token reached the kernel's output"
    assert broker.public_key not in output, "the public key reached the kernel's output"
