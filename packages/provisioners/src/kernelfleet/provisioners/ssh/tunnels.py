"""Local port forwards to a kernel whose ports only its host can reach (``tunneling = True``).

Gateway Provisioners spawned one ``ssh -L`` subprocess per port through pexpect. Here each of the
five kernel ports and the comm port is an asyncssh local forward on the host's shared connection,
listening on 127.0.0.1 and connecting from the remote host to the kernel's reported address.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping

import asyncssh

KERNEL_PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
LOCAL_ADDRESS = "127.0.0.1"


class TunnelError(OSError):
    """A forward could not be opened; the message names the port."""


class KernelTunnels:
    """The forwards of one kernel, by port name (the five kernel ports and ``comm_port``)."""

    def __init__(self, remote_ip: str, remote_ports: Mapping[str, int]) -> None:
        self.remote_ip = remote_ip
        self.remote_ports = dict(remote_ports)
        self.local_ports: dict[str, int] = {}
        self._listeners: list[asyncssh.SSHListener] = []
        self._conn: asyncssh.SSHClientConnection | None = None

    async def open(
        self, conn: asyncssh.SSHClientConnection, preferred: Mapping[str, int] | None = None,
        log: logging.Logger | None = None,
    ) -> dict[str, int]:
        """Open every forward; ``preferred`` local ports are tried first (a reattach keeps its ports)."""
        self._conn = conn
        try:
            for name, remote_port in self.remote_ports.items():
                wanted = int((preferred or {}).get(name) or 0)
                try:
                    listener = await conn.forward_local_port(LOCAL_ADDRESS, wanted, self.remote_ip, remote_port)
                except OSError:
                    if not wanted:
                        raise
                    if log is not None:
                        log.warning("Tunnel port %s:%s is taken; using a new local port for %s", LOCAL_ADDRESS,
                                    wanted, name)
                    listener = await conn.forward_local_port(LOCAL_ADDRESS, 0, self.remote_ip, remote_port)
                self._listeners.append(listener)
                self.local_ports[name] = listener.get_port()
        except (OSError, asyncssh.Error) as err:
            self.close()
            raise TunnelError(f"cannot forward a local port to {self.remote_ip} on the kernel's host: {err}") from None
        return dict(self.local_ports)

    @property
    def broken(self) -> bool:
        """True once the connection carrying the forwards is gone (or they were never opened)."""
        return self._conn is None or self._conn.is_closed()

    def close(self) -> None:
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                listener.close()
        self._listeners.clear()

    def state(self) -> dict[str, object]:
        """What a restarted server needs to open the same forwards again."""
        return {"remote_ip": self.remote_ip, "remote_ports": self.remote_ports, "local_ports": self.local_ports}
