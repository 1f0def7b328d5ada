"""The supervisor's side of a real CommServer in tests: records which actions the comm server asked for.

Shared by the comm server's limit tests and its fuzz tests, which run a real CommServer on a real socket
without a kernel behind it.
"""

from __future__ import annotations


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
