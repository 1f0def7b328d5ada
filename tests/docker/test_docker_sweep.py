"""The orphan sweep for Docker and Swarm: a server killed with SIGKILL after and during launches leaves
containers, services and launch-token secrets; ``jupyter kernelfleet sweep`` lists exactly those (not a kernel a
session claims, not another server's, not a launch in progress) and ``--yes`` removes them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kf_docker import leftovers
from kf_testing import manager
from sweep_testing import crash_server, listed_kernels, sweep_away, sweep_cli, until_made_something, write_session

from kernelfleet.provisioners.sweep import claimed_kernel_ids, find_orphans

ENGINES = ("--engine", "docker", "--engine", "swarm")


async def test_sweep_finds_and_removes_what_a_killed_server_left_on_docker_and_swarm(
    docker_spec: Callable[..., str], swarm_ready: None, kernels_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    container_spec, service_spec = docker_spec("docker-provisioner"), docker_spec("docker-swarm-provisioner")
    server, other = f"sweep-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    kid = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in
           ("container-after", "service-after", "container-mid", "service-mid", "other", "claimed", "young")}
    store = tmp_path / "kernelfleet-sessions"

    try:
        await crash_server(kernels_dir, server, [
            {"spec": container_spec, "kernel_id": kid["container-after"], "mode": "after"},
            {"spec": service_spec, "kernel_id": kid["service-after"], "mode": "after"},
            {"spec": container_spec, "kernel_id": kid["container-mid"], "mode": "mid"},
            {"spec": service_spec, "kernel_id": kid["service-mid"], "mode": "mid"},
        ])
        await crash_server(kernels_dir, other, [{"spec": container_spec, "kernel_id": kid["other"], "mode": "mid"}])
        monkeypatch.setenv("KF_SERVER_ID", server)  # this test process is the restarted server
        # Everything younger than this mark is left alone below: the claimed kernel's start puts seconds between
        # the crashed server's objects and the launch in progress.
        in_progress_since = time.monotonic()
        claimed = manager(kernels_dir, container_spec, kernel_id=kid["claimed"])
        await claimed.start_kernel()
        write_session(store, kid["claimed"])
        young = manager(kernels_dir, container_spec, kernel_id=kid["young"])
        launching = asyncio.ensure_future(young.start_kernel())
        orphans = {
            kid["container-after"]: {"docker container"}, kid["service-after"]: {"swarm service", "swarm secret"},
            kid["container-mid"]: {"docker container"}, kid["service-mid"]: {"swarm service", "swarm secret"},
        }
        try:
            await until_made_something(young, launching)
            found = await find_orphans(claimed_kernel_ids(store), engines=["docker", "swarm"],
                                       min_age=time.monotonic() - in_progress_since)
            assert not found.unavailable
            kinds: dict[str, set[str]] = {}
            for orphan in found:
                kinds.setdefault(orphan.kernel_id, set()).add(f"{orphan.engine} {orphan.kind}")
            assert kinds == orphans
        finally:
            launching.cancel()
            await asyncio.wait({launching})
        assert await leftovers(kid["young"]) == []

        status, out, err = await sweep_cli(*ENGINES, "--store-dir", str(store), "--grace", "0")
        assert status == 0 and listed_kernels(out) == orphans, out + err
        assert all([await leftovers(k) for k in orphans])

        status, out, err = await sweep_cli(*ENGINES, "--store-dir", str(store), "--grace", "0", "--yes")
        assert status == 0 and "failed" not in out, out + err
        assert {k: await leftovers(k) for k in orphans} == {k: [] for k in orphans}
        assert await leftovers(kid["other"]), "another server's container was removed"
        assert await claimed.is_alive()

        await claimed.shutdown_kernel(now=True)
        status, out, err = await sweep_cli(*ENGINES, "--server-id", other, "--all-unclaimed", "--grace", "0", "--yes")
        assert status == 0 and set(listed_kernels(out)) == {kid["other"]}, out + err
        assert await leftovers(kid["other"]) == []
    finally:
        await sweep_away([server, other], ["docker", "swarm"])
