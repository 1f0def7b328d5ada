"""The Python launcher's port reservation, against the real Linux socket layer and a real launcher.

First the kernel behaviour the reservation relies on (ports.py), checked on this machine: a port held by a
reservation (bound without SO_REUSEADDR, then given SO_REUSEADDR, never listening) cannot be bound by an
ordinary program or another launcher, is never handed out by bind(0) or connect(), and ZMQ's listener binds
on top of it. Then the race itself: a neighbour that binds every kernel port the launcher announces (its
"ports chosen" log line) or reports, the moment it can. Before the fix it took the ports the launcher had
released for the kernel, and the kernel died with "Address already in use" after its report was accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import zmq
from bench.port_contention import port_thief
from jupyter_client.asynchronous.client import AsyncKernelClient

from kernelfleet.launcher.ports import PortError, bind_ports, open_to_kernel, port_of
from kernelfleet.protocol.ports import PortRange
from kernelfleet.provisioners.broker import ResponseBroker

KERNEL_PORTS = ("shell", "iopub", "stdin", "control", "hb")
ANNOUNCED = re.compile(rb"shell (\d+), iopub (\d+), stdin (\d+), control (\d+), hb (\d+)")
LAUNCHES = 5
READY_TIMEOUT = 120.0  # bounds a wait on a loaded host

pytestmark = pytest.mark.timeout(900)


def test_a_reservation_keeps_everyone_but_the_kernel_off_the_port() -> None:
    reservations = bind_ports("127.0.0.1", PortRange(), count=400)
    for sock in reservations:
        open_to_kernel(sock)
    reserved = {port_of(s) for s in reservations}
    port = port_of(reservations[0])
    others: list[socket.socket] = []
    ctx = zmq.Context()
    try:
        for address in ("127.0.0.1", "0.0.0.0"):  # an ordinary program, on the address or on every address
            plain = socket.socket()
            others.append(plain)
            with pytest.raises(OSError):
                plain.bind((address, port))
        with pytest.raises(PortError):  # another launcher's reservation
            bind_ports("127.0.0.1", PortRange(port, port), count=1)
        listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
        reservations.append(listener)  # closed with them at the end
        for _ in range(3000):  # ephemeral picks: bind(0) and the source port of connect()
            picked = socket.socket()
            others.append(picked)
            picked.bind(("127.0.0.1", 0))
            assert port_of(picked) not in reserved
            outbound = socket.socket()
            others.append(outbound)
            outbound.connect(listener.getsockname())
            assert port_of(outbound) not in reserved
            others.append(listener.accept()[0])
            if len(others) > 1500:
                for sock in others:
                    sock.close()
                others.clear()
        kernel = ctx.socket(zmq.ROUTER)  # ZMQ's listener binds on top of the reservation
        kernel.bind(f"tcp://127.0.0.1:{port}")
        peer = ctx.socket(zmq.DEALER)
        peer.connect(f"tcp://127.0.0.1:{port}")
        peer.send(b"ping")
        assert kernel.poll(10_000) and kernel.recv_multipart()[1] == b"ping"
    finally:
        for sock in reservations + others:
            sock.close()
        ctx.destroy(linger=0)


@pytest.fixture
async def broker() -> AsyncIterator[ResponseBroker]:
    b = ResponseBroker(bind_ip="127.0.0.1", advertised_ip="127.0.0.1", port=0)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


async def launch_beside_a_thief(broker: ResponseBroker, index: int) -> tuple[str, set[int]]:
    """One launcher whose announced and reported kernel ports a thief tries to take; the cell's status and what the
    thief took."""
    kernel_id = f"port-race-{os.getpid()}-{index}-{os.urandom(3).hex()}"
    pending = broker.expect(kernel_id)
    env = {k: v for k, v in os.environ.items() if k not in ("KERNEL_ID", "PORT_RANGE")}
    env.update(LAUNCH_TOKEN=pending.token, LOG_LEVEL="INFO")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kernelfleet.launcher", "--kernel-id", kernel_id, "--port-range", "0..0",
        "--response-address", broker.response_address, "--public-key", broker.public_key,
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    client = AsyncKernelClient()
    watcher: asyncio.Task[None] | None = None
    try:
        async with port_thief() as thief:

            async def announced() -> None:
                assert proc.stderr is not None
                async for line in proc.stderr:
                    if found := ANNOUNCED.search(line):
                        thief.want(int(p) for p in found.groups())

            watcher = asyncio.create_task(announced())
            report = await pending.wait(timeout=READY_TIMEOUT)
            thief.want(report.connection_info[f"{n}_port"] for n in KERNEL_PORTS)
            client.load_connection_info({**report.connection_info, "ip": "127.0.0.1"})
            client.start_channels(hb=False)
            try:
                await client.wait_for_ready(timeout=READY_TIMEOUT)
                msg_id = client.execute("6 * 7")
                while (reply := await client.get_shell_msg(timeout=READY_TIMEOUT))["parent_header"].get(
                    "msg_id"
                ) != msg_id:
                    pass
                status = str(reply["content"]["status"])
            except RuntimeError as err:  # "Kernel died before replying" / "didn't respond"
                status = str(err)
        return status, thief.taken
    finally:
        client.stop_channels()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        await proc.wait()
        if watcher is not None:
            watcher.cancel()


async def test_announced_and_reported_ports_cannot_be_taken(broker: ResponseBroker) -> None:
    results = await asyncio.gather(*(launch_beside_a_thief(broker, i) for i in range(LAUNCHES)))
    assert all(status == "ok" for status, _ in results), results
    assert not any(taken for _, taken in results), f"the neighbour took kernel ports: {results}"
