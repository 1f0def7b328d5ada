"""Attacks on the response broker (issue 12, items 2-4 and 8), each reproduced against the real broker over
real sockets: idle-connection floods, descriptor exhaustion, forged and garbage v1 payloads, deeply
nested JSON, and log floods."""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import secrets
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from report_clients import ACCEPTED, REJECTED, gp_v1_payload, sealed_report, send, v1_info

from kernelfleet.provisioners.broker import ResponseBroker

pytestmark = pytest.mark.hostile

BROKER_SERVER = Path(__file__).resolve().parents[3] / "tools" / "bench" / "broker_server.py"


@pytest.fixture
async def broker() -> AsyncIterator[ResponseBroker]:
    b = ResponseBroker(bind_ip="127.0.0.1", advertised_ip="127.0.0.1", port=0, read_timeout=30.0)
    await b.start()
    yield b
    await b.stop()


async def idle_connections(address: str, count: int) -> list[socket.socket]:
    """Connections that send nothing, ever: what an attacker holds open."""
    host, port = address.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, int(port)))
        held.append(sock)
    return held


def raise_own_descriptor_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= needed, f"this test needs {needed} descriptors; the hard limit here is {hard}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))


class BrokerProcess:
    """The real broker in its own process (tools/bench/broker_server.py serve) with its own descriptor limit."""

    def __init__(self, process: asyncio.subprocess.Process, info: dict[str, Any], stderr: Path) -> None:
        self.process = process
        self.address: str = info["address"]
        self.public_key: str = info["public_key"]
        self.stderr = stderr

    @classmethod
    async def start(cls, tmp_path: Path, *args: str) -> BrokerProcess:
        stderr = tmp_path / "broker.stderr"
        with stderr.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(BROKER_SERVER), "kf", "serve", *args,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=sink,
            )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line, f"the broker process died: {stderr.read_text()}"
        return cls(process, json.loads(line), stderr)

    async def command(self, **command: object) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        return json.loads(await asyncio.wait_for(self.process.stdout.readline(), 60))

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()

    def log_lines(self) -> int:
        return len(self.stderr.read_bytes().splitlines())


async def test_idle_flood_at_1024_descriptors_leaves_room_for_reports_and_files(tmp_path: Path) -> None:
    """Item 2: 2,000 idle connections against a server whose descriptor limit is 1,024 (soft and hard, so the
    broker cannot raise it). Before the fix the whole process ran out of descriptors, the report waited in
    the accept queue until idle connections timed out (here: 120 s), and every accept failure was logged."""
    raise_own_descriptor_limit(2300)
    server = await BrokerProcess.start(tmp_path, "--nofile", "1024:1024", "--read-timeout", "120")
    held: list[socket.socket] = []
    try:
        held = await idle_connections(server.address, 2000)
        for n in range(3):
            kernel_id = f"kernel-legit-{n}"
            token = (await server.command(expect=kernel_id))["token"]
            reply = await asyncio.wait_for(send(server.address, sealed_report(server.public_key, kernel_id, token)),
                                           20)
            assert reply == ACCEPTED
            assert (await server.command(wait=kernel_id, timeout=10))["ok"]
        assert (await server.command(open_file=1))["open_file"], "the server process ran out of descriptors"
        stats = await server.command(stats=1)
        assert stats["fds"] < 1024 - 64, stats
        assert stats["counters"]["evicted"] >= 2000 - 256, stats
        assert server.log_lines() < 50, server.stderr.read_text()[-3000:]
    finally:
        for sock in held:
            sock.close()
        await server.stop()


async def test_idle_connections_beyond_the_cap_evict_the_oldest() -> None:
    broker = ResponseBroker(bind_ip="127.0.0.1", advertised_ip="127.0.0.1", port=0, read_timeout=30.0,
                            max_connections=8)
    await broker.start()
    held = await idle_connections(broker.response_address, 40)
    try:
        pending = broker.expect("kernel-capped")
        assert await send(broker.response_address, sealed_report(broker.public_key, "kernel-capped", pending.token)) \
            == ACCEPTED
        await pending.wait(5)
        assert broker.held_connections <= 8
        assert broker.counters["evicted"] >= 40 - 8
        oldest = held[0]
        oldest.setblocking(True)
        oldest.settimeout(10)
        assert oldest.recv(10) == b"", "the oldest idle connection was closed by the broker"
    finally:
        for sock in held:
            sock.close()
        await broker.stop()


async def test_forged_v1_payload_does_not_end_a_pending_launch(broker: ResponseBroker) -> None:
    """Item 3: a v1 payload needs only the public key and the kernel id, both public. With v1 off it used to
    fail the pending launch it named."""
    pending = broker.expect("kernel-victim")
    forged = gp_v1_payload(broker.public_key, v1_info("kernel-victim"))
    assert await send(broker.response_address, forged, close_after=True) == REJECTED
    assert not pending.done, "a forged v1 payload ended the launch"
    assert await send(broker.response_address, sealed_report(broker.public_key, "kernel-victim", pending.token)) \
        == ACCEPTED
    assert (await pending.wait(5)).version == 2


async def test_v1_garbage_flood_costs_no_private_key_operation(broker: ResponseBroker) -> None:
    """Item 4: v1-shaped lines (made with the real public key, so each would decrypt) while v1 is off: none
    reaches the private key, and the launch waiting meanwhile gets its report."""
    pending = broker.expect("kernel-busy")
    flood = [gp_v1_payload(broker.public_key, v1_info(f"kernel-{secrets.token_hex(4)}")) for _ in range(200)]
    gate = asyncio.Semaphore(50)

    async def one(payload: bytes) -> bytes:
        async with gate:
            return await send(broker.response_address, payload, close_after=True)

    assert set(await asyncio.gather(*(one(p) for p in flood))) == {REJECTED}
    assert broker.counters["v1_refused"] == 200
    assert broker.counters["opened"] == 0, "a v1 payload reached the private key while v1 is off"
    assert await send(broker.response_address, sealed_report(broker.public_key, "kernel-busy", pending.token)) \
        == ACCEPTED
    assert broker.counters["opened"] == 1


async def test_v1_is_opened_only_for_a_launch_that_accepts_it(broker: ResponseBroker) -> None:
    """With v1 on, a v1 payload still costs nothing while no launch that accepts v1 is waiting."""
    v2_only = broker.expect("kernel-v2-only")
    broker.accept_v1_reports = True
    payload = gp_v1_payload(broker.public_key, v1_info("kernel-v2-only"))
    assert await send(broker.response_address, payload, close_after=True) == REJECTED
    assert broker.counters["opened"] == 0 and not v2_only.done


@pytest.mark.parametrize("opening", [b'{"kernel_id":"kernel-deep","x":', b'{"protocol":', b""])
async def test_deeply_nested_json_is_rejected_cleanly(
    broker: ResponseBroker, caplog: pytest.LogCaptureFixture, opening: bytes
) -> None:
    """Item 8: a line of 60,000 brackets drove json.loads into RecursionError inside the broker's task (the
    connection closed without an answer and asyncio logged an unretrieved exception)."""
    pending = broker.expect("kernel-deep")
    line = opening + b"[" * 60_000 + b"\n"
    assert await send(broker.response_address, line) == REJECTED
    assert not pending.done
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await send(broker.response_address, sealed_report(broker.public_key, "kernel-deep", pending.token)) \
        == ACCEPTED


async def test_rejected_connections_do_not_flood_the_log(broker: ResponseBroker,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """Item 8: one WARNING per rejected connection let anyone fill the log; now one line per kind and interval."""
    caplog.set_level(logging.DEBUG, logger="kernelfleet.broker")
    garbage = [b'{"kernel_id":"nobody-%d"}\n' % n for n in range(150)] + [b"\x00\xff\n"] * 150
    gate = asyncio.Semaphore(50)

    async def one(payload: bytes) -> bytes:
        async with gate:
            return await send(broker.response_address, payload)

    assert set(await asyncio.gather(*(one(g) for g in garbage))) == {REJECTED}
    warnings = [r for r in caplog.records if r.name == "kernelfleet.broker" and r.levelno >= logging.WARNING]
    assert 1 <= len(warnings) <= 4, [r.getMessage() for r in warnings]
    assert broker.limited_log.suppressed >= 290
