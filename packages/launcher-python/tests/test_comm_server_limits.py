"""The Python launcher's comm server under hostile input, on real sockets (issue 12, items 1 and 8).

Each test fails on the comm server before the fix: a 4 KiB line of ``[`` raised an unhandled
RecursionError (no answer at all), 100 idle connections took all 16 slots so the server's ping was
dropped, and every refused request was its own WARNING line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from comm_recorder import ServedCommServer

from kernelfleet.protocol import CommOp
from kernelfleet.protocol.comm_client import send_request

pytestmark = pytest.mark.hostile


@pytest.fixture
def served() -> Iterator[ServedCommServer]:
    served = ServedCommServer("k-limits")
    yield served
    served.close()


async def one_line_exchange(port: int, line: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await asyncio.wait_for(reader.readline(), 10)
        writer.write(line)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


async def test_deeply_nested_json_is_refused_with_an_answer(served: ServedCommServer) -> None:
    answer = await one_line_exchange(served.port, b"[" * 4000 + b"\n")
    assert answer == b'{"ok":false,"error":"unauthenticated"}\n'
    assert (await send_request("127.0.0.1", served.port, served.key, CommOp.PING))["ok"] is True


@pytest.mark.parametrize("attacker", ["127.0.0.1", "127.0.0.9"], ids=["same address", "another address"])
async def test_idle_connections_never_keep_the_server_out(served: ServedCommServer, attacker: str) -> None:
    idle = [await asyncio.open_connection("127.0.0.1", served.port, local_addr=(attacker, 0)) for _ in range(100)]
    try:
        for _ in range(5):
            reply = await send_request("127.0.0.1", served.port, served.key, CommOp.INTERRUPT)
            assert reply == {"ok": True, "alive": True}
        assert served.actions.calls == ["interrupt"] * 5
    finally:
        for _, writer in idle:
            writer.close()


async def test_refused_requests_are_logged_at_a_bounded_rate(
    served: ServedCommServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kernelfleet.launcher")
    for _ in range(200):
        answer = await one_line_exchange(served.port, b'{"request":"{}","mac":"AAAA"}\n')
        assert answer == b'{"ok":false,"error":"unauthenticated"}\n'
    refused = [r for r in caplog.records if "refused comm request" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in refused]
    assert served.actions.calls == []
