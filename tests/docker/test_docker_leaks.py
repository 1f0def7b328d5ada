"""Mixed cycles on Docker and Docker Swarm leave nothing behind: no container, service or secret with this server's
label, no kernel process, no descriptor or asyncio task in the server (issue 11, item 5)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from leak_probe import docker_objects_of_server
from mixed_cycles import FAILING_KERNEL_CLASS, assert_no_leaks, cycle_count, kernel_manager_for, measure_leaks


async def test_mixed_cycles_leave_nothing_on_docker(
    provisioner: str, docker_spec: Callable[..., str], kernels_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = "swarm" if "swarm" in provisioner else "docker"
    server_id = f"leaks-{engine}-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("KF_SERVER_ID", server_id)
    name = docker_spec(provisioner, f"{engine}_leaks")
    failing = docker_spec(provisioner, f"{engine}_leaks_failing", kernel_class_name=FAILING_KERNEL_CLASS)
    mkm = kernel_manager_for(kernels_dir)
    try:
        report = await measure_leaks(
            engine, mkm, name, failing, server_id, cycles=cycle_count(10 if engine == "docker" else 6), at_once=3,
            engine_objects=lambda: docker_objects_of_server(server_id, swarm=True))
    finally:
        await mkm.shutdown_all(now=True)
        mkm.context.destroy(linger=0)
    assert_no_leaks(report, f"test_mixed_cycles_leave_nothing_on_docker[{provisioner}]")
