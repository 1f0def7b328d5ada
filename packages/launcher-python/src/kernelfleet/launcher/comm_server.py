"""The comm port (docs/protocol.md, section 4): authenticated interrupt/ping/terminate/kill/shutdown requests.

Every connection gets its own nonce, so only a request MACed for that nonce with the comm key is acted
on; anything else is answered ``ok:false`` and ignored. Each connection has a hard deadline and a line
cap, and only a few may be open at once, so a slow or hostile peer cannot tie the launcher up.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Protocol

from kernelfleet.protocol import CommOp, CommProtocolError, UnknownOpError, greeting, reply, verify_request
from kernelfleet.protocol.constants import MAX_COMM_LINE_BYTES

CONNECTION_DEADLINE = 5.0
MAX_CONNECTIONS = 16
DEFAULT_GRACE = 5.0
MAX_GRACE = 60.0

log = logging.getLogger("kernelfleet.launcher")


class CommActions(Protocol):
    """What the supervisor does for each op; the comm server only decides whether to ask."""

    def alive(self) -> bool: ...
    def interrupt(self) -> None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def shutdown(self, grace: float) -> None: ...


class RequestRefused(Exception):
    """A request that is answered ok:false; the message is the reply's error and is safe to log."""


def _grace(params: dict[str, Any]) -> float:
    grace = params.get("grace", DEFAULT_GRACE)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not grace >= 0:
        raise RequestRefused("grace must be a non-negative number of seconds")
    return min(float(grace), MAX_GRACE)


class CommServer:
    def __init__(self, comm_key: bytes, actions: CommActions, *, kernel_id: str) -> None:
        self._key = comm_key
        self._actions = actions
        self._kernel_id = kernel_id
        self._server: asyncio.Server | None = None
        self._open = 0

    async def start(self, sock: socket.socket) -> None:
        """Serve on an already bound socket (the one that reserved the comm port)."""
        self._server = await asyncio.start_server(self._handle, sock=sock, limit=MAX_COMM_LINE_BYTES)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= MAX_CONNECTIONS:
            writer.transport.abort()
            return
        self._open += 1
        peer = writer.get_extra_info("peername")
        try:
            await asyncio.wait_for(self._converse(reader, writer, peer), CONNECTION_DEADLINE)
        except TimeoutError:
            log.warning("kernel %s: comm connection from %s timed out", self._kernel_id, peer)
        except (ConnectionError, OSError):
            pass
        finally:
            self._open -= 1
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Any) -> None:
        line, nonce = greeting()
        writer.write(line)
        await writer.drain()
        try:
            try:
                request = await reader.readline()
            except ValueError:  # the stream's limit: a line longer than the protocol allows
                raise RequestRefused("request line too long") from None
            try:
                op, params = verify_request(self._key, nonce, request)
            except UnknownOpError:  # only a request that verified can get this far
                raise RequestRefused("unknown op") from None
            except CommProtocolError:
                raise RequestRefused("unauthenticated") from None
            answer = self._act(op, params)
        except RequestRefused as refused:
            log.warning("kernel %s: refused comm request from %s: %s", self._kernel_id, peer, refused)
            answer = reply(False, error=str(refused))
        writer.write(answer)
        await writer.drain()

    def _act(self, op: CommOp, params: dict[str, Any]) -> bytes:
        actions = self._actions
        if op is CommOp.PING:
            log.debug("kernel %s: ping", self._kernel_id)
        elif op is CommOp.INTERRUPT:
            actions.interrupt()
        elif op is CommOp.TERMINATE:
            actions.terminate()
        elif op is CommOp.KILL:
            actions.kill()
        elif op is CommOp.SHUTDOWN:
            actions.shutdown(_grace(params))
        return reply(True, alive=actions.alive())
