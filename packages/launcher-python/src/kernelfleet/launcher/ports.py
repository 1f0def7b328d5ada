"""Choosing the kernel's five ports and the comm port (docs/protocol.md, section 5).

Every port is bound here without SO_REUSEADDR, so the bind itself proves nobody else holds it (another
launcher's reservation included). The comm port's socket becomes the comm server's listener. The five
kernel ports are never released while the kernel runs: ``open_to_kernel`` turns each into a
reservation, a socket that stays bound but never listens, with SO_REUSEADDR set after the bind. On
Linux such a socket makes every other bind of the port fail (unless it too sets SO_REUSEADDR and
names the port explicitly) and keeps it out of bind(0) and connect() ephemeral picks, while the
kernel's ZMQ listener, which sets SO_REUSEADDR, binds on top of it. So no other process can take a
port between the choice and the kernel's bind (tests/launchers/test_port_race.py checks each claim).
"""

from __future__ import annotations

import errno
import os
import socket

from kernelfleet.protocol.contract import PORT_COUNT, TRIES_PER_PORT
from kernelfleet.protocol.ports import PortRange

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


def open_to_kernel(sock: socket.socket) -> None:
    """Let the kernel's ZMQ listener bind on top of this still-bound socket; see the module docstring.

    Called by the supervisor for the five kernel ports; the socket must stay open until the kernel exits.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])
