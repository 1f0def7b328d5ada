"""The comm port (docs/protocol.md, section 4): authenticated interrupt/ping/terminate/kill/shutdown/signal requests.

Every connection gets its own nonce, so only a request MACed for that nonce with the comm key is acted
on; anything else is answered ``ok:false`` and ignored.

Nobody who can merely reach the port may keep the server from being served (an unreachable comm port
once made the server declare a live kernel dead and restart it):

* one deadline covers the whole conversation, from accept to the request line, however the bytes
  trickle in (one byte every few seconds buys nothing);
* a line is at most ``MAX_COMM_LINE_BYTES``; JSON nesting is bounded by the protocol's parser;
* at most ``MAX_CONNECTIONS`` connections wait for their request; a new one evicts the oldest waiting
  connection of the peer address that holds the most. An attacker elsewhere on the network therefore
  only ever evicts its own connections, never the server's (one connection, sent its request one round
  trip after the greeting). From the server's own address (same host, same NAT) the server's
  connection is the newest, so it is evicted only if the port gets ``MAX_CONNECTIONS`` new connections
  within that round trip; the server then retries once (comm_client);
* refused and evicted connections are counted into rate-limited warnings, not one line each.

Requests are handled synchronously when their line is complete (verify, act, reply): there is no gap
between a complete request arriving and it being acted on in which it could be evicted. The sockets are
served by the supervisor's ``Reactor`` (reactor.py), not asyncio, to keep the long-lived process small.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter

from kernelfleet.launcher.reactor import Reactor, Timer
from kernelfleet.protocol.comm import CommOp, CommProtocolError, UnknownOpError, greeting, reply, verify_request
from kernelfleet.protocol.constants import MAX_COMM_LINE_BYTES
from kernelfleet.protocol.loglimit import LogLimiter
from kernelfleet.protocol.signals import SignalRefused, checked_signal_name

TYPE_CHECKING = False  # typing itself stays unloaded: these modules run in the launcher's small supervisor
if TYPE_CHECKING:
    from typing import Any, Protocol

REQUEST_DEADLINE = 5.0
MAX_CONNECTIONS = 64
DEFAULT_GRACE = 5.0
MAX_GRACE = 60.0
BACKLOG = 1024

log = logging.getLogger("kernelfleet.launcher")


if TYPE_CHECKING:

    class CommActions(Protocol):
        """What the supervisor does for each op; the comm server only decides whether to ask."""

        def alive(self) -> bool: ...
        def interrupt(self) -> None: ...
        def terminate(self) -> None: ...
        def kill(self) -> None: ...
        def shutdown(self, grace: float) -> None: ...
        def deliver(self, name: str) -> None: ...


class RequestRefused(Exception):
    """A request that is answered ok:false; the message is the reply's error and is safe to log."""


def _signal(params: dict[str, Any]) -> str:
    """The signal op's name, checked against protocol 2.2's allow-list (signals.py): never a number."""
    try:
        return checked_signal_name(params.get("signal"))
    except SignalRefused as refused:
        raise RequestRefused(str(refused)) from None


def _grace(params: dict[str, Any]) -> float:
    grace = params.get("grace", DEFAULT_GRACE)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not grace >= 0:
        raise RequestRefused("grace must be a non-negative number of seconds")
    return min(float(grace), MAX_GRACE)


class CommServer:
    """Serves the comm port for the launcher's supervisor (supervisor.py), which owns the listening socket."""

    def __init__(
        self,
        comm_key: bytes,
        actions: CommActions,
        *,
        kernel_id: str,
        max_connections: int = MAX_CONNECTIONS,
        deadline: float = REQUEST_DEADLINE,
    ) -> None:
        self._key = comm_key
        self._actions = actions
        self._kernel_id = kernel_id
        self._max_connections = max_connections
        self._deadline = deadline
        self._reactor: Reactor | None = None
        self._sock: socket.socket | None = None
        self._waiting: dict[_CommConnection, None] = {}  # insertion order: the oldest first
        self._warnings = LogLimiter(log)

    def start(self, sock: socket.socket, reactor: Reactor) -> None:
        """Serve on an already bound socket (the one that reserved the comm port), from ``reactor``."""
        sock.listen(BACKLOG)
        sock.setblocking(False)
        self._sock, self._reactor = sock, reactor
        reactor.add_reader(sock, self._accept)

    def close(self) -> None:
        if self._sock is not None and self._reactor is not None:
            self._reactor.remove_reader(self._sock)
            self._sock.close()
            self._sock = None
        for conn in list(self._waiting):
            conn.abort()

    def _accept(self) -> None:
        assert self._sock is not None and self._reactor is not None
        for _ in range(self._max_connections):  # what is queued now, bounded so the loop stays responsive
            try:
                sock, peer = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # EMFILE and friends: the connection stays queued; say so, rate-limited
                self._warnings.warning("accept", "kernel %s: comm port cannot accept: %s", self._kernel_id, err)
                return
            _CommConnection(self, self._reactor, sock, peer)

    # -- called by the connections ---------------------------------------------------------------

    def admit(self, conn: _CommConnection) -> None:
        """Make room for a new connection by evicting the oldest ones still waiting for their request."""
        while len(self._waiting) >= self._max_connections:
            victim = self._victim()
            self._warnings.warning(
                "evicted", "kernel %s: comm port full (%d connections without a request); closed the oldest from %s",
                self._kernel_id, len(self._waiting), victim.peer,
            )
            victim.abort()
        self._waiting[conn] = None

    def _victim(self) -> _CommConnection:
        """The oldest waiting connection of the peer address holding the most waiting connections."""
        counts = Counter(conn.host for conn in self._waiting)
        most = max(counts.values())
        return next(conn for conn in self._waiting if counts[conn.host] == most)

    def forget(self, conn: _CommConnection) -> None:
        self._waiting.pop(conn, None)

    def timed_out(self, conn: _CommConnection) -> None:
        self._warnings.warning(
            "timed out", "kernel %s: comm connection from %s sent no complete request within %g s; closed",
            self._kernel_id, conn.peer, self._deadline,
        )

    def answer(self, nonce: bytes, line: bytes, peer: Any) -> bytes:
        """The reply to one request line; a line over the cap (no newline within it) is refused here."""
        try:
            if len(line) > MAX_COMM_LINE_BYTES:
                raise RequestRefused("request line too long")
            try:
                op, params = verify_request(self._key, nonce, line)
            except UnknownOpError:  # only a request that verified can get this far
                raise RequestRefused("unknown op") from None
            except CommProtocolError:
                raise RequestRefused("unauthenticated") from None
            return self._act(op, params)
        except RequestRefused as refused:
            self._warnings.warning(
                f"refused: {refused}", "kernel %s: refused comm request from %s: %s", self._kernel_id, peer, refused
            )
            return reply(False, error=str(refused))

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
        elif op is CommOp.SIGNAL:
            actions.deliver(_signal(params))
        return reply(True, alive=actions.alive())

    @property
    def deadline(self) -> float:
        return self._deadline

    @property
    def waiting(self) -> int:
        """Connections that have not yet delivered a request (for tests and the benchmark)."""
        return len(self._waiting)


class _CommConnection:
    """One connection: greeting out, one line in (before the deadline), one reply out, closed.

    Greeting and reply are a few hundred bytes on a fresh connection: they always fit the socket's send
    buffer, so a send that does not take them whole means a peer gone wrong, and the connection is dropped.
    """

    def __init__(self, server: CommServer, reactor: Reactor, sock: socket.socket, peer: Any) -> None:
        self._server = server
        self._reactor = reactor
        self._sock: socket.socket | None = sock
        self._buffer = bytearray()
        self.peer = peer
        self.host: str = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        sock.setblocking(False)
        server.admit(self)
        line, self._nonce = greeting()
        self._deadline: Timer | None = reactor.call_later(server.deadline, self._expire)
        if self._send(line):
            reactor.add_reader(sock, self._readable)

    def _send(self, data: bytes) -> bool:
        assert self._sock is not None
        try:
            if self._sock.send(data) == len(data):
                return True
        except OSError:
            pass
        self.abort()
        return False

    def _readable(self) -> None:
        if self._sock is None:
            return
        try:
            data = self._sock.recv(MAX_COMM_LINE_BYTES + 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # a peer that stops sending before its request line gets nothing: close
            self.abort()
            return
        self._buffer += data
        end = self._buffer.find(b"\n")
        if end < 0 and len(self._buffer) <= MAX_COMM_LINE_BYTES:
            return
        line = bytes(self._buffer[: end + 1]) if end >= 0 else bytes(self._buffer)
        self._finish(self._server.answer(self._nonce, line, self.peer))

    def _finish(self, answer: bytes) -> None:
        self._server.forget(self)
        self._stop_timer()
        if self._sock is not None and self._send(answer):
            self._close(graceful=True)

    def _expire(self) -> None:
        self._deadline = None
        self._server.timed_out(self)
        self.abort()

    def _stop_timer(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def abort(self) -> None:
        """Drop the connection at once (RST): eviction, deadline, server stop."""
        self._server.forget(self)
        self._stop_timer()
        self._close(graceful=False)

    def _close(self, *, graceful: bool) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._reactor.remove_reader(sock)
        if not graceful:  # SO_LINGER 0: close sends RST instead of FIN, as asyncio's abort() does
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
        sock.close()
