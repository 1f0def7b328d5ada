"""The server's end of one registered standby: its open connection to the broker, and the claim sent on it.

The broker hands the socket over once the registration verified (``ResponseBroker.expect_standby``). While
the standby waits, the socket is watched with ``add_reader`` and nothing else: an idle standby costs the
server no timer and no wake-up. End of stream (or any byte, which a standby never sends unasked) means the
standby is gone, and the pool hears of it at once. ``claim`` is called at most once, by the provisioner
that took the link from its pool, which removed it from the idle list first (atomically, on the loop): a
standby never serves two kernels.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any

from kernelfleet.protocol.standby import Claim, Registration, seal_claim

MAX_ANSWER = 4096


KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 30, 10, 3


def _keepalive(sock: socket.socket) -> None:
    """TCP keepalive on a standby's connection: a standby whose host vanished (powered off, cut off) never closes its
    end, and the kernel's probes end the connection after about a minute, so the pool replaces it; no timer here."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                          ("TCP_KEEPCNT", KEEPALIVE_COUNT)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class ClaimFailed(RuntimeError):
    """The standby did not take the claim (gone, refused, or silent); the message is safe to log."""


class StandbyLink:
    """One registered standby of a pool; ``handle`` is what its engine started (a local process...)."""

    def __init__(self, registration: Registration, sock: socket.socket, handle: Any,
                 on_lost: Callable[[StandbyLink], None]) -> None:
        self.registration = registration
        self.handle = handle
        self.sock = sock
        self.claimed = False
        self.lost = False
        self._on_lost = on_lost
        self.registered_at = asyncio.get_running_loop().time()
        sock.setblocking(False)
        _keepalive(sock)
        asyncio.get_running_loop().add_reader(sock, self._readable)

    @property
    def standby_id(self) -> str:
        return self.registration.standby_id

    def _readable(self) -> None:
        """EOF, a reset or an unasked byte before any claim: the standby is gone (or broken); let it go."""
        try:
            self.sock.recv(1)  # whatever it returns: a standby speaks only when spoken to
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.drop()
        self._on_lost(self)

    def drop(self) -> None:
        """Close the connection: a standby that loses it exits by itself (its server let go of it)."""
        if self.sock.fileno() >= 0:
            asyncio.get_running_loop().remove_reader(self.sock)
            self.sock.close()
        self.lost = True

    async def claim(self, claim: Claim, timeout: float) -> None:
        """Send the claim and wait for the standby's answer; ClaimFailed unless it accepted."""
        if self.claimed or self.lost:
            raise ClaimFailed(f"standby {self.standby_id} was claimed or lost already")
        self.claimed = True
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.sock)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_sendall(self.sock, seal_claim(claim, self.registration))
                answer = bytearray()
                while b"\n" not in answer and len(answer) < MAX_ANSWER:
                    chunk = await loop.sock_recv(self.sock, MAX_ANSWER)
                    if not chunk:
                        break
                    answer += chunk
        except TimeoutError:
            raise ClaimFailed(f"standby {self.standby_id} did not answer the claim within {timeout:g}s") from None
        except OSError as err:
            raise ClaimFailed(f"standby {self.standby_id} is gone: {err}") from None
        finally:
            self.sock.close()
            self.lost = True
        try:
            reply = json.loads(bytes(answer))
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or reply.get("ok") is not True:
            why = reply.get("error") if isinstance(reply, dict) else "no answer"
            raise ClaimFailed(f"standby {self.standby_id} refused the claim: {why}")
