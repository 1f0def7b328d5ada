"""Launch events in process, for the engines the jupyter_server test does not start: a stand-in for the ServerApp
that owns a real jupyter_events ``EventLogger`` (what provisioners look for up their parent chain), a subscriber
that keeps every launch event, and a kernel manager made under it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_events import EventLogger
from traitlets import Instance
from traitlets.config import LoggingConfigurable

from kernelfleet.provisioners.launch_events import SCHEMA_ID, launch_schema


class EventServer(LoggingConfigurable):  # type: ignore[misc]
    """Owns the EventLogger, as jupyter_server's ServerApp does; ``events`` is what a subscriber received."""

    event_logger = Instance(EventLogger, args=())

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self.event_logger.register_event_schema(launch_schema())
        self.event_logger.add_listener(schema_id=SCHEMA_ID, listener=self._received)

    async def _received(self, logger: EventLogger, schema_id: str, data: dict[str, Any]) -> None:
        self.events.append(data)
        self._changed.set()

    async def until(self, kernel_id: str, phase: str, timeout: float = 60) -> list[dict[str, Any]]:
        """This kernel's events once one of ``phase`` has arrived (subscribers run as tasks, after the emit)."""
        async with asyncio.timeout(timeout):
            while phase not in self.phases(kernel_id):
                self._changed.clear()
                await self._changed.wait()
        return self.of(kernel_id)

    def of(self, kernel_id: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["kernel_id"] == kernel_id]

    def phases(self, kernel_id: str) -> list[str]:
        return [event["phase"] for event in self.of(kernel_id)]

    def manager(self, kernels_dir: Path, name: str) -> AsyncKernelManager:
        return AsyncKernelManager(kernel_name=name, kernel_id=str(uuid.uuid4()), parent=self,
                                  kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]))


def assert_in_order(events: list[dict[str, Any]], *expected: str) -> None:
    """Each of ``expected`` phases occurs, each first occurrence after the previous one's; elapsed never goes back."""
    phases = [event["phase"] for event in events]
    positions = [phases.index(phase) for phase in expected if phase in phases]
    assert len(positions) == len(expected), f"phases {phases} lack some of {expected}"
    assert positions == sorted(positions), f"phases {phases} are not in the order {expected}"
    elapsed = [event["elapsed"] for event in events]
    assert elapsed == sorted(elapsed), f"elapsed times go backwards: {elapsed}"


@contextlib.asynccontextmanager
async def launched(server: EventServer, km: AsyncKernelManager) -> AsyncIterator[list[dict[str, Any]]]:
    """Start the kernel; its events once connected (the phases every engine has checked in order); shut it down."""
    await km.start_kernel()
    try:
        events = await server.until(km.kernel_id, "connected")
        assert_in_order(events, "accepted", "launcher_started", "reported", "connected")
        yield events
    finally:
        await km.shutdown_kernel(now=True)
