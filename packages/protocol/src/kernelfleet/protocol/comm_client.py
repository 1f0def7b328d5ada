"""The server's side of the communication port: one authenticated request per connection."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kernelfleet.protocol.comm import CommOp, CommProtocolError, parse_greeting, parse_reply, sign_request
from kernelfleet.protocol.constants import MAX_COMM_LINE_BYTES


class CommConnectionDropped(CommProtocolError):
    """The launcher closed or reset the connection before answering: its port was full and it evicted us."""


async def send_request(
    host: str, port: int, comm_key: bytes, op: CommOp | str, *, timeout: float = 5.0, **params: Any
) -> dict[str, Any]:
    """Send ``op`` and return the launcher's reply.

    A launcher whose comm port is full evicts its oldest waiting connections; if that was ours (a flood
    of connections arrived within our round trip) the request was never acted on, so it is sent once
    more on a new connection, inside the same ``timeout``.

    Raises OSError when the launcher cannot be reached, TimeoutError when it does not answer within
    ``timeout``, and CommProtocolError when it answers something other than protocol v2.
    """
    async with asyncio.timeout(timeout):
        try:
            return await _converse(host, port, comm_key, CommOp(op), params)
        except (ConnectionResetError, BrokenPipeError, CommConnectionDropped):
            return await _converse(host, port, comm_key, CommOp(op), params)


async def _converse(host: str, port: int, comm_key: bytes, op: CommOp, params: dict[str, Any]) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection(host, port, limit=MAX_COMM_LINE_BYTES)
    try:
        nonce = parse_greeting(await _read_line(reader))
        writer.write(sign_request(comm_key, nonce, op, **params))
        await writer.drain()
        return parse_reply(await _read_line(reader))
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def send_legacy_request(host: str, port: int, request: dict[str, Any], *, timeout: float = 5.0) -> None:
    """Gateway Provisioners' (v1) unauthenticated request, for kernels whose images predate protocol v2."""
    async with asyncio.timeout(timeout):
        _, writer = await asyncio.open_connection(host, port)
        writer.write(json.dumps(request).encode("utf-8"))
        await writer.drain()
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readline()
    except (asyncio.LimitOverrunError, ValueError):
        raise CommProtocolError("comm peer sent an over-long line") from None
    if not line.endswith(b"\n"):
        raise CommConnectionDropped("comm peer closed the connection without answering")
    return line
