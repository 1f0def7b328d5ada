"""Launch events of the Docker engines in process (a real EventLogger and subscriber): the swarm task's states as
Swarm names them (as read during the launch), a container's events as Docker sends them, and a container that
dies with its exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kf_docker import leftovers
from launch_events_testing import EventServer, launched

from kernelfleet.provisioners.base import LaunchError

# https://docs.docker.com/engine/swarm/how-swarm-mode-works/swarm-task-states/
SWARM_ORDER = ["new", "pending", "assigned", "accepted", "ready", "preparing", "starting", "running", "complete",
               "failed", "shutdown", "rejected", "orphaned", "remove"]
PHASES = {"assigned": "scheduled", "preparing": "image_pull", "running": "started"}


async def test_swarm_task_states_are_forwarded(kernels_dir: Path, docker_spec: Callable[..., str],
                                                swarm_ready: None) -> None:
    server = EventServer()
    km = server.manager(kernels_dir, docker_spec("docker-swarm-provisioner"))
    async with launched(server, km) as events:
        # The task's states as the provisioner reads them, woken by container events: a short one may be skipped.
        states = [e["reason"] for e in events if e.get("reason")]
        assert states, [e["phase"] for e in events]
        assert states == sorted(states, key=SWARM_ORDER.index), states
        by_state = {e["reason"]: e["phase"] for e in events if e.get("reason")}
        assert all(by_state[s] == PHASES.get(s, "engine_event") for s in states), by_state
        assert {e["engine"] for e in events} == {"swarm"}
    assert await leftovers(km.kernel_id) == []


async def test_docker_container_events_and_a_death_with_its_exit_code(
    kernels_dir: Path, docker_spec: Callable[..., str],
) -> None:
    server = EventServer()
    km = server.manager(kernels_dir, docker_spec("docker-provisioner"))
    async with launched(server, km) as events:
        assert "started" in [e["phase"] for e in events]
        assert "create" in {e.get("reason") for e in events if e["phase"] == "engine_event"}
        assert all("image_pull" != e["phase"] for e in events)  # the image is there: nothing to pull

    # the kernelspec argv's Spark mode reaches the image's bootstrap, which refuses it and exits with 1
    dies = server.manager(kernels_dir, docker_spec("docker-provisioner", name="dies", spark_init_mode="sideways"))
    with pytest.raises(LaunchError):
        await dies.start_kernel()
    events = await server.until(dies.kernel_id, "failed")
    died = [e for e in events if e.get("reason") == "die"]
    assert died and "exit code 1" in died[0]["message"], [(e["phase"], e.get("reason")) for e in events]
    assert dies.kernel_id in events[-1]["message"] and "code 1" in events[-1]["message"], events[-1]
    assert await leftovers(dies.kernel_id) == []
