"""Driving R (IRkernel) and Scala (Toree) kernels in tests: their replies differ from ipykernel's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous.client import AsyncKernelClient
from kf_testing import STARTED, start_busy_cell

from kernelfleet.protocol import parse_greeting, sign_request
from kernelfleet.provisioners.broker import ResponseBroker

CELL = 120.0
R_PACKAGES = ("IRkernel", "jsonlite", "openssl")


# The first line of a cell to be interrupted: kf_testing.start_busy_cell waits for its output.
SAY_STARTED_R = f'cat("{STARTED}\\n")\n'
SAY_STARTED_SCALA = f'println("{STARTED}")\n'


async def connect(km: AsyncKernelManager, timeout: float) -> AsyncKernelClient:
    """No heartbeat channel: IRkernel and Toree answer heartbeats from busy loops; liveness is the manager's poll."""
    client = km.client()
    client.start_channels(hb=False)
    await client.wait_for_ready(timeout=timeout)
    return client


async def execute(client: AsyncKernelClient, code: str, timeout: float = CELL) -> dict[str, Any]:
    """Run ``code``: the reply content plus its text/plain value (execute_result, or IRkernel's display_data).

    The shell reply comes first: a request IRkernel aborts after an interrupt gets no iopub messages.
    """
    return await collect(client, client.execute(code), timeout)


async def collect(client: AsyncKernelClient, msg_id: str, timeout: float = CELL) -> dict[str, Any]:
    """What ``execute`` returns, for a request already sent (its ``msg_id``)."""
    out: dict[str, Any] = {"stdout": "", "result": None, "ename": None}
    async with asyncio.timeout(timeout):
        while (reply := await client.get_shell_msg())["parent_header"].get("msg_id") != msg_id:
            pass
        if reply["content"]["status"] == "aborted":
            return {**reply["content"], **out}
        while True:
            msg = await client.get_iopub_msg()
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                out["stdout"] += content["text"]
            elif kind in ("execute_result", "display_data"):
                out["result"] = content["data"].get("text/plain")
            elif kind == "error":
                out["ename"] = content["ename"]
            elif kind == "status" and content["execution_state"] == "idle":
                if out["result"] is None and reply["content"]["status"] == "ok":
                    out["result"] = await late_result(client, msg_id)
                # Toree may publish an interrupted cell's error after its idle status: the reply names it too.
                out["ename"] = out["ename"] or reply["content"].get("ename")
                return {**reply["content"], **out}


async def late_result(client: AsyncKernelClient, msg_id: str, wait: float = 3.0) -> str | None:
    """Toree can publish ``idle`` before the value of a cell that first creates the SparkContext."""
    try:
        async with asyncio.timeout(wait):
            while True:
                msg = await client.get_iopub_msg()
                ours = msg["parent_header"].get("msg_id") == msg_id
                if ours and msg["msg_type"] in ("execute_result", "display_data"):
                    return msg["content"]["data"].get("text/plain")
    except TimeoutError:
        return None


async def execute_settled(client: AsyncKernelClient, code: str) -> dict[str, Any]:
    """IRkernel may abort the one request queued behind an interrupted cell; a second try must succeed."""
    reply = await execute(client, code)
    return await execute(client, code) if reply["status"] == "aborted" else reply


async def execute_after_interrupt(client: AsyncKernelClient, code: str) -> dict[str, Any]:
    """Run ``code`` in a kernel whose previous cell was interrupted.

    After a failed cell Toree resets its ``lastException`` binding through the interpreter on its own
    thread; now and then that statement's echo (``lastException = null``) is captured as the value of the
    next cell instead. That one leaked echo is tolerated; any other value, or a second leak, is returned.
    """
    reply = await execute(client, code)
    leaked = (reply.get("result") or "").startswith("lastException")
    return await execute(client, code) if leaked else reply


async def interrupt(km: AsyncKernelManager, client: AsyncKernelClient, code: str) -> dict[str, Any]:
    """Run ``code`` (it prints ``STARTED`` first), interrupt it through the manager (the provisioner's comm
    ``interrupt``) once it runs, return its reply; the reply must come within the cell deadline."""
    msg_id = await start_busy_cell(client, code, timeout=CELL)
    await km.interrupt_kernel()
    return await collect(client, msg_id)


async def hostile_requests_are_ignored(km: AsyncKernelManager) -> None:
    """Gateway Provisioners' unauthenticated request and a request signed with a wrong key do nothing."""
    host, port = km.provisioner.comm_host, km.provisioner.comm_port
    assert host and port
    for attempt in ("unauthenticated", "wrong key"):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            greeting = await asyncio.wait_for(reader.readline(), 10)
            if attempt == "unauthenticated":
                line = json.dumps({"signum": int(signal.SIGKILL)}).encode() + b"\n"
            else:
                line = sign_request(os.urandom(32), parse_greeting(greeting), "kill")
            writer.write(line)
            await writer.drain()
            answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
        finally:
            writer.close()
        assert answer == {"ok": False, "error": "unauthenticated"}, f"{attempt}: {answer}"
    assert await km.is_alive(), "a hostile comm request stopped the kernel"


def require_r() -> str:
    """Rscript with the R launcher's packages (R_PACKAGES), or a test failure that says what to install."""
    path = shutil.which("Rscript")
    if path is None:
        pytest.fail("Rscript is not installed: the R launcher needs R (Debian: apt-get install r-base-core)")
    probe = subprocess.run(
        [path, "-e", f'm <- c({", ".join(map(repr, R_PACKAGES))}); '
         'cat(m[!vapply(m, requireNamespace, TRUE, quietly = TRUE)])'],
        capture_output=True, text=True, timeout=120,
    )
    missing = probe.stdout.split()
    if probe.returncode != 0 or missing:
        pytest.fail(f"R packages missing for the R launcher: {' '.join(missing) or probe.stderr.strip()} "
                    "(Debian: apt-get install r-cran-irkernel r-cran-jsonlite r-cran-openssl)")
    return path


async def r_kernel_takes_signals(km: AsyncKernelManager, client: AsyncKernelClient) -> None:
    """Protocol 2.2's signal op to an R kernel through its provisioner: SIGSTOP pauses it (its comm listener still
    answers), SIGCONT resumes it and the cell sent meanwhile runs; SIGHUP, on which R ends, ends the kernel."""
    await km.signal_kernel(signal.SIGSTOP)
    assert await km.is_alive()
    msg_id = client.execute("6*7")
    await km.signal_kernel(signal.SIGCONT)
    assert (await collect(client, msg_id))["result"] == "[1] 42"
    await km.signal_kernel(signal.SIGHUP)
    assert km.provisioner is not None
    assert await asyncio.wait_for(km.provisioner.wait(), 60) is not None
    assert not await km.is_alive()
@contextlib.asynccontextmanager
async def running_loopback_broker(monkeypatch: Any) -> AsyncIterator[ResponseBroker]:
    """The shared broker on 127.0.0.1 (the kernels, and through run.sh Spark's driver, bind loopback), started up front
    as a server does and stopped at the end."""
    monkeypatch.setenv("KF_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("KF_RESPONSE_PORT", "0")
    broker = await ResponseBroker.instance()
    try:
        yield broker
    finally:
        running = ResponseBroker._instances.get(asyncio.get_running_loop())
        if running is not None:
            await running.stop()
