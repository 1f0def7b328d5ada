"""Choosing the kernel's five ports and the comm port (docs/protocol.md, section 5).

Each chosen port is held by a bound socket until the kernel is spawned, so two picks can never collide
and nothing else on the host grabs a port while the others are being chosen. The comm port's socket
is kept and becomes the comm server's listener, so that one has no race at all.
"""

from __future__ import annotations

import errno
import os
import socket

from kernelfleet.protocol.ports import PortRange

PORT_COUNT = 6
TRIES_PER_PORT = 50
_BUSY = {errno.EADDRINUSE, errno.EACCES}


class PortError(RuntimeError):
    """No free port could be found in the configured range."""


def _family(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _bind(ip: str, port: int) -> socket.socket:
    sock = socket.socket(_family(ip), socket.SOCK_STREAM)
    try:
        sock.bind((ip, port))
    except OSError:
        sock.close()
        raise
    return sock


def _random_port(port_range: PortRange) -> int:
    # Not a secret: os.urandom only avoids importing random on the launcher's start-up path.
    return port_range.lower + int.from_bytes(os.urandom(4), "big") % port_range.size


def bind_ports(ip: str, port_range: PortRange, count: int = PORT_COUNT) -> list[socket.socket]:
    """Return ``count`` sockets bound on ``ip`` to distinct free ports (inside the range, if one is set)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(_bind_one(ip, port_range))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind_one(ip: str, port_range: PortRange) -> socket.socket:
    if port_range.unrestricted:
        try:
            return _bind(ip, 0)
        except OSError as err:
            raise PortError(f"cannot bind a port on KERNEL_IP {ip}: {err.strerror}") from None
    for _ in range(TRIES_PER_PORT):
        try:
            return _bind(ip, _random_port(port_range))
        except OSError as err:
            if err.errno not in _BUSY:
                raise PortError(f"cannot bind a port on KERNEL_IP {ip}: {err.strerror}") from None
    raise PortError(f"no free port found in PORT_RANGE {port_range} after {TRIES_PER_PORT} tries")


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])
