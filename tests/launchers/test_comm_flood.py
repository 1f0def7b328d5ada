"""A kernel's comm port flooded while it runs: interrupts still arrive, poll() never calls it dead, no restart.

Issue 12, item 1: 32 idle connections to a kernel's comm port once made 0 of 20 interrupts arrive and
``poll()`` answer "exited" every time, so jupyter_client's restarter replaced a live kernel. Here each
launcher (Python, R with IRkernel, Scala with Toree) runs for real on an SSH "host" (a real sshd on
127.0.0.2) through distributed-provisioner, driven by jupyter_client's AsyncIOLoopKernelManager with its
restarter running, as a notebook server drives it. The attacker is a separate process
(tools/bench/comm_flood.py) on another address (127.0.0.9): it holds 32 idle connections, then 1,000,
then 32 slow-loris connections (one byte every 2 s, never a newline), opening a new connection whenever
the launcher drops one. Under each attack a cell is interrupted three times (synchronised on the cell's
own output, not on sleeps) and ``poll()`` is asked; the user's variable must survive it all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.ioloop import AsyncIOLoopKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from traitlets.config import Config

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "ssh"), str(Path(__file__).resolve().parent)]
from bench.comm_flood import Attacker, raise_descriptor_limit  # noqa: E402
from rs_testing import execute, execute_after_interrupt  # noqa: E402
from sshd import SshCluster, SshdMissing, start_cluster  # noqa: E402
from test_rs_lifecycle import Installed, installed  # noqa: E402, F401

from kernelfleet.provisioners.broker import ResponseBroker  # noqa: E402
from kernelfleet.provisioners.leases import close_all  # noqa: E402

HOST = "127.0.0.2"
ATTACKER_ADDRESS = "127.0.0.9"  # "another machine": loopback addresses are distinct peers to the launcher
ATTACKS = (("32 idle connections", 32, None), ("1,000 idle connections", 1000, None),
           ("32 slow-loris connections", 32, 2.0))
INTERRUPTS_PER_ATTACK = 3
READY = {"python": 60.0, "R": 60.0, "scala": 240.0}
CELL = {"python": 60.0, "R": 60.0, "scala": 120.0}
# A cell that says it started, then blocks: the interrupt goes out once its output arrived.
BUSY_CELL = {
    "python": "print('busy', flush=True)\nimport time\ntime.sleep(600)",
    "R": 'cat("busy\\n")\nSys.sleep(600)',
    "scala": 'println("busy")\nThread.sleep(600000)',
}
STATE = {"python": ("x = 41", "x + 1", "42"), "R": ("x <- 41", "x + 1", "[1] 42"),
         "scala": ("val x = 41", "x + 1", "42")}

pytestmark = [pytest.mark.hostile, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def ssh_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshCluster]:
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("sshd"), (HOST,))
    except SshdMissing as err:
        pytest.fail(str(err))
    yield cluster
    cluster.stop()


@pytest.fixture(autouse=True)
async def loopback_broker(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    monkeypatch.setenv("KF_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("KF_RESPONSE_PORT", "0")
    raise_descriptor_limit()  # the attacker's 1,000 connections are a child process's, but be generous
    await ResponseBroker.instance()
    yield
    await close_all()


def ssh_kernelspec(make_kernelspec: Callable[..., str], cluster: SshCluster, language: str,
                   installed_spec: Path | None = None) -> str:
    """A distributed-provisioner kernelspec for the SSH host; R and Scala take argv and env from our CLIs' specs."""
    config: dict[str, Any] = {**cluster.provisioner_config(), "remote_hosts": [HOST], "launch_timeout": 240,
                              "ssh_connect_timeout": 60}
    if installed_spec is None:
        return make_kernelspec(f"flood_{language}", config=config, env={"KERNEL_IP": HOST})
    spec = json.loads(installed_spec.read_text())
    env = {**spec["env"], "KERNEL_IP": HOST}
    if "SPARK_LOCAL_IP" in env:
        env["SPARK_LOCAL_IP"] = HOST
    return make_kernelspec(f"flood_{language}", argv=spec["argv"], env=env, language=spec["language"],
                           config={**spec["metadata"]["kernel_provisioner"]["config"], **config})


async def interrupt_busy_cell(km: AsyncIOLoopKernelManager, client: Any, language: str) -> dict[str, Any]:
    """Run the busy cell; once its output arrived, interrupt through the manager; return the cell's reply."""
    msg_id = client.execute(BUSY_CELL[language])
    async with asyncio.timeout(CELL[language]):
        while True:
            msg = await client.get_iopub_msg()
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                break
    await km.interrupt_kernel()
    try:
        async with asyncio.timeout(CELL[language]):
            while (reply := await client.get_shell_msg())["parent_header"].get("msg_id") != msg_id:
                pass
    except TimeoutError:
        raise AssertionError(f"{language}: the interrupt never reached the kernel (the cell still runs)") from None
    await until_idle(client, msg_id, CELL[language])
    return dict(reply["content"])


async def until_idle(client: Any, msg_id: str, timeout: float) -> None:
    """Wait for the kernel's "idle" status for ``msg_id``: the kernel is done with that request.

    IRkernel sends an interrupted cell's reply, then aborts whatever already waits on its shell socket
    (an ``aborted`` reply, no iopub output), and only then says idle. A cell sent between the reply and
    that idle would be aborted, and its output awaited forever; so the next cell waits for this event.
    """
    async with asyncio.timeout(timeout):
        while True:
            msg = await client.get_iopub_msg()
            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"].get("execution_state") == "idle"):
                return


def interrupted(language: str, reply: dict[str, Any]) -> bool:
    if language == "python":
        return reply.get("ename") == "KeyboardInterrupt"
    if language == "scala":
        return reply["status"] == "error" and "InterruptedException" in str(reply.get("ename"))
    return reply["status"] in ("error", "abort", "aborted")


async def flood_a_live_kernel(km: AsyncIOLoopKernelManager, language: str, caplog: pytest.LogCaptureFixture) -> None:
    restarts: list[str] = []
    await km.start_kernel()
    km.add_restart_callback(lambda: restarts.append("restart"), "restart")
    km.add_restart_callback(lambda: restarts.append("dead"), "dead")
    km.start_restarter()
    client = km.client()
    client.start_channels(hb=False)
    try:
        await client.wait_for_ready(timeout=READY[language])
        define, use, expected = STATE[language]
        assert (await execute(client, define))["status"] == "ok"
        prov = km.provisioner
        assert prov.is_remote and prov.comm_host == HOST, (prov.assigned_host, prov.comm_host)
        results: dict[str, list[bool]] = {}
        for name, connections, trickle in ATTACKS:
            async with Attacker(HOST, prov.comm_port, connections, trickle, ATTACKER_ADDRESS) as attacker:
                outcomes = results.setdefault(name, [])
                for _ in range(INTERRUPTS_PER_ATTACK):
                    reply = await interrupt_busy_cell(km, client, language)
                    assert interrupted(language, reply), f"{language}, {name}: {reply}"
                    assert await prov.poll() is None, f"{language}, {name}: poll() called the live kernel dead"
                    outcomes.append(True)
            assert attacker.stats["connections"] >= connections, attacker.stats
            # IRkernel may abort the request queued behind an interrupted cell; Toree may leak its own
            # `lastException = null` echo into the value of the cell after an interrupted one.
            after = await execute_after_interrupt(client, use)
            if after["status"] == "aborted":
                after = await execute(client, use)
            assert after["result"] == expected, f"{language}, after {name}: the kernel lost its state: {after}"
        assert restarts == [], f"{language}: jupyter_client's restarter acted on a live kernel: {restarts}"
        assert "could not be delivered" not in caplog.text
        print(f"\n{language}: interrupts delivered under attack: "
              + ", ".join(f"{name} {sum(v)}/{len(v)}" for name, v in results.items()), file=sys.stderr)
    finally:
        client.stop_channels()
        km.stop_restarter()
        if km.has_kernel:
            await km.shutdown_kernel(now=True)


def flood_manager(kernels_dir: Path, name: str) -> AsyncIOLoopKernelManager:
    # The restarter polls every second, so a wrong "dead" during an attack is acted on at once.
    config = Config({"KernelRestarter": {"time_to_dead": 1.0}})
    return AsyncIOLoopKernelManager(kernel_name=name, config=config,
                                    kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]))


async def test_python_launcher_comm_flood(make_kernelspec: Callable[..., str], kernels_dir: Path, ssh_host: SshCluster,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    name = ssh_kernelspec(make_kernelspec, ssh_host, "python")
    await flood_a_live_kernel(flood_manager(kernels_dir, name), "python", caplog)


async def test_r_launcher_comm_flood(make_kernelspec: Callable[..., str], kernels_dir: Path, ssh_host: SshCluster,
                                     installed: Installed, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    caplog.set_level(logging.WARNING)
    name = ssh_kernelspec(make_kernelspec, ssh_host, "R", installed.kernels_dir / installed.r_spec / "kernel.json")
    await flood_a_live_kernel(flood_manager(kernels_dir, name), "R", caplog)


async def test_scala_launcher_comm_flood(make_kernelspec: Callable[..., str], kernels_dir: Path, ssh_host: SshCluster,
                                         installed: Installed, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    caplog.set_level(logging.WARNING)
    name = ssh_kernelspec(make_kernelspec, ssh_host, "scala",
                          installed.kernels_dir / installed.scala_spec / "kernel.json")
    await flood_a_live_kernel(flood_manager(kernels_dir, name), "scala", caplog)
