"""Launch events of the YARN engine in process (a real EventLogger and subscriber): the application's states as
the ResourceManager names them, RUNNING being the started phase."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from launch_events_testing import EventServer, assert_in_order, launched

from kernelfleet.yarnlite import ResourceManager


async def test_app_states_are_forwarded(kernels_dir: Path, make_kernelspec: Callable[..., str],
                                        rm: ResourceManager) -> None:
    server = EventServer()
    name = make_kernelspec("yarn_events", provisioner="yarn-provisioner",
                           config={"yarn_endpoint": rm.endpoint, "submission": "rest"})
    km = server.manager(kernels_dir, name)
    async with launched(server, km) as events:
        assert_in_order(events, "launcher_started", "started", "reported")
        started = next(e for e in events if e["phase"] == "started")
        assert started["reason"] == "RUNNING" and km.provisioner.application_id in started["message"], started
        assert {e["engine"] for e in events} == {"yarn"}
