"""The supervisor's side of a real CommServer in tests: records which actions the comm server asked for.

Shared by the comm server's limit tests and its fuzz tests, which run a real CommServer on a real socket
without a kernel behind it, served by the supervisor's own Reactor on a thread of its own.
"""

from __future__ import annotations

import os
import socket
import threading

from kernelfleet.launcher.comm_server import CommServer
from kernelfleet.launcher.reactor import Reactor


class RecordedActions:
    """Implements the launcher's CommActions; ``calls`` lists what was asked, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def alive(self) -> bool:
        return True

    def interrupt(self) -> None:
        self.calls.append("interrupt")

    def terminate(self) -> None:
        self.calls.append("terminate")

    def kill(self) -> None:
        self.calls.append("kill")

    def shutdown(self, grace: float) -> None:
        self.calls.append(f"shutdown {grace}")

    def deliver(self, name: str) -> None:
        self.calls.append(f"signal {name}")


class ServedCommServer:
    """A CommServer on 127.0.0.1 with a fresh comm key and a RecordedActions, until ``close``."""

    def __init__(self, kernel_id: str, key: bytes | None = None) -> None:
        self.key = key or os.urandom(32)
        self.actions = RecordedActions()
        self.reactor = Reactor()
        self.server = CommServer(self.key, self.actions, kernel_id=kernel_id)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port: int = sock.getsockname()[1]
        self.server.start(sock, self.reactor)
        self._thread = threading.Thread(target=self.reactor.run, name=f"comm-{kernel_id}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.reactor.stop()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the comm server's reactor did not stop"
        self.server.close()
        self.reactor.close()
