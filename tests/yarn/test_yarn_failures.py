"""How launches on YARN fail: each error names the kernel, the application and YARN's own reason, and comes as
soon as YARN knows (well before the launch timeout). Plus HA: a standby RM first in the list, and a fail-over in
the middle of a launch, cost the launch nothing."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kf_testing import connect, execute, manager

from kernelfleet.provisioners.base import LaunchError
from kernelfleet.yarnlite import Cluster, ResourceManager, ResourceManagerPair

LAUNCH_TIMEOUT = 60  # failures must come long before this


def rest_spec(make_kernelspec: Callable[..., str], endpoint: str, **config: Any) -> str:
    argv = config.pop("argv", None)
    return make_kernelspec("yarn_fail", provisioner="yarn-provisioner", argv=argv,
                           config={"yarn_endpoint": endpoint, "submission": "rest", "launch_timeout": LAUNCH_TIMEOUT,
                                   **config})


async def failed_start(kernels_dir: Path, name: str) -> tuple[str, str, float]:
    """(kernel id, error text, seconds until the error) of a launch that must fail."""
    km = manager(kernels_dir, name)
    started = time.perf_counter()
    with pytest.raises((LaunchError, RuntimeError, TimeoutError)) as failure:
        await km.start_kernel()
    elapsed = time.perf_counter() - started
    assert not km.has_kernel
    return str(km.kernel_id), str(failure.value), elapsed


async def test_unknown_queue(kernels_dir: Path, make_kernelspec: Callable[..., str], rm: ResourceManager,
                             cluster: Cluster) -> None:
    kernel_id, error, elapsed = await failed_start(kernels_dir, rest_spec(make_kernelspec, rm.endpoint,
                                                                          queue="nosuch"))
    (app,) = cluster.apps.values()
    assert kernel_id in error and app.id in error and "unknown queue: nosuch" in error and "FAILED" in error
    assert elapsed < 10


async def test_am_exit(kernels_dir: Path, make_kernelspec: Callable[..., str], rm: ResourceManager,
                       cluster: Cluster) -> None:
    argv = [sys.executable, "-c", "import sys; print('no kernel today', file=sys.stderr); sys.exit(3)"]
    kernel_id, error, elapsed = await failed_start(kernels_dir, rest_spec(make_kernelspec, rm.endpoint, argv=argv))
    (app,) = cluster.apps.values()
    assert kernel_id in error and app.id in error
    assert "exitCode: 3" in error and "no kernel today" in error and "final status FAILED" in error
    assert elapsed < 10


async def test_queue_stays_full(kernels_dir: Path, make_kernelspec: Callable[..., str], rm: ResourceManager,
                                cluster: Cluster) -> None:
    name = rest_spec(make_kernelspec, rm.endpoint, queue="full", queue_timeout=1.0)
    kernel_id, error, elapsed = await failed_start(kernels_dir, name)
    (app,) = cluster.apps.values()
    assert kernel_id in error and app.id in error
    assert "stayed ACCEPTED in queue 'full'" in error and "Queue 'full' is full" in error
    assert app.state == "KILLED"  # the abandoned launch does not keep its place in the queue
    assert elapsed < 10


async def test_killed_while_launching(kernels_dir: Path, make_kernelspec: Callable[..., str], rm: ResourceManager,
                                      cluster: Cluster) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(120)"]  # an AM that never reports
    km = manager(kernels_dir, rest_spec(make_kernelspec, rm.endpoint, argv=argv))
    start = asyncio.ensure_future(km.start_kernel())
    app = await asyncio.wait_for(cluster.submitted.get(), 30)
    await asyncio.wait_for(app.running.wait(), 30)
    await cluster.kill(app)
    with pytest.raises(LaunchError) as failure:
        await start
    assert app.id in str(failure.value) and "KILLED" in str(failure.value) and "killed by user" in str(failure.value)


async def test_rm_down(kernels_dir: Path, make_kernelspec: Callable[..., str]) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}/ws/v1/cluster"
    kernel_id, error, elapsed = await failed_start(kernels_dir, rest_spec(make_kernelspec, endpoint))
    assert kernel_id in error and "no YARN ResourceManager answered" in error and endpoint in error
    assert elapsed < 5


async def test_submitter_fails(kernels_dir: Path, make_kernelspec: Callable[..., str], rm: ResourceManager,
                               spark_home: Path) -> None:
    argv = [str(spark_home / "bin" / "spark-submit"), "--no-such-option", "x", "app.py"]
    name = make_kernelspec("yarn_submit_fail", provisioner="yarn-provisioner", argv=argv,
                           config={"yarn_endpoint": rm.endpoint, "launch_timeout": LAUNCH_TIMEOUT})
    kernel_id, error, elapsed = await failed_start(kernels_dir, name)
    assert kernel_id in error and "exited with code 1" in error and "unknown option --no-such-option" in error
    assert elapsed < 10


async def test_standby_first_costs_one_request(kernels_dir: Path, make_kernelspec: Callable[..., str],
                                               pair: ResourceManagerPair, cluster: Cluster) -> None:
    name = make_kernelspec("yarn_ha", provisioner="yarn-provisioner", argv=None,
                           config={"yarn_endpoint": pair.rm2.endpoint, "alt_yarn_endpoint": pair.rm1.endpoint,
                                   "submission": "rest"})
    km = manager(kernels_dir, name)
    await km.start_kernel()
    try:
        client = await connect(km)
        assert (await execute(client, "1 + 1"))["result"] == "2"
        client.stop_channels()
    finally:
        await km.shutdown_kernel()
    assert pair.rm2.requests == 1  # the first request's redirect; the active RM is remembered from then on
    assert all(app.state == "FINISHED" for app in cluster.apps.values())


async def test_fail_over_mid_launch(kernels_dir: Path, make_kernelspec: Callable[..., str],
                                    pair: ResourceManagerPair, cluster: Cluster) -> None:
    cluster.schedule_delay = 1.0  # the app waits ACCEPTED while the RMs fail over
    name = make_kernelspec("yarn_failover", provisioner="yarn-provisioner", argv=None,
                           config={"yarn_endpoint": pair.rm1.endpoint, "alt_yarn_endpoint": pair.rm2.endpoint,
                                   "submission": "rest"})
    km = manager(kernels_dir, name)
    start = asyncio.ensure_future(km.start_kernel())
    app = await asyncio.wait_for(cluster.submitted.get(), 30)
    pair.rm1.fail_over_to(pair.rm2)
    await pair.rm1.stop()
    await start
    try:
        assert km.provisioner.application_id == app.id
        client = await connect(km)
        assert (await execute(client, "2 + 2"))["result"] == "4"
        client.stop_channels()
    finally:
        await km.shutdown_kernel()
    assert app.state == "FINISHED" and pair.rm2.requests > 0
