"""dockerd restarted under running Docker kernels (a private dockerd: see dockerd_testing.py).

With ``--live-restore`` the containers outlive the daemon: the kernel keeps working while dockerd is
down and after, and the provisioner's shared event stream subscribes again (a container killed
afterwards is seen through it). Without it, dockerd stops the containers on its way down: the kernel
is reported dead, with its exit code, once Docker can say so — never while Docker cannot answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dockerd_testing import PrivateDockerd
from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous.client import AsyncKernelClient
from kf_testing import connect, execute, interrupt_busy_cell, manager
from reliability_figures import record_figure
from ssh_testing import gone, processes_with_env, wait_until


def kernel_containers(daemon: PrivateDockerd, kernel_id: str, every: bool = False) -> list[str]:
    args = ["ps", "-q", "--filter", f"label=kernel_id={kernel_id}"]
    return daemon.cli(*([*args, "-a"] if every else args)).split()


async def running_kernel(daemon: PrivateDockerd, live_restore: bool, spec: str, kernels_dir: Path
                         ) -> tuple[AsyncKernelManager, AsyncKernelClient]:
    """A kernel on the private dockerd in the wanted live-restore mode, connected, with ``x = 42`` set."""
    if daemon.live_restore != live_restore:
        await asyncio.to_thread(daemon.restart, live_restore)
    km = manager(kernels_dir, spec)
    await km.start_kernel()
    try:
        client = await connect(km)
        assert (await execute(client, "x = 42\nx"))["result"] == "42"
    except BaseException:
        await km.shutdown_kernel(now=True)
        raise
    return km, client


def end_lines(caplog: pytest.LogCaptureFixture, kernel_id: str) -> list[str]:
    """The provisioner's log lines that report the kernel's container ended."""
    return [r.getMessage() for r in caplog.records if kernel_id in r.getMessage() and "exited" in r.getMessage()]


async def test_live_restore_restart_keeps_the_kernel_and_the_event_stream(
    on_private_dockerd: PrivateDockerd, private_docker_spec: Callable[..., str], kernels_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    daemon = on_private_dockerd
    km, client = await running_kernel(daemon, True, private_docker_spec(), kernels_dir)
    kernel_id = km.kernel_id
    try:
        await asyncio.to_thread(daemon.stop)
        # Docker cannot answer: the kernel's state is unknown, which is not dead
        assert await km.provisioner.poll() is None
        assert await km.is_alive()
        assert (await execute(client, "x + 1"))["result"] == "43", "the kernel stopped working with dockerd down"

        back = time.monotonic()
        await asyncio.to_thread(daemon.start)
        up = time.monotonic()
        assert await km.provisioner.poll() is None
        assert (await execute(client, "x + 2"))["result"] == "44"
        record_figure("test_live_restore_restart_keeps_the_kernel_and_the_event_stream", "docker",
                      "dockerd restart (live-restore)", "seconds from dockerd answering to a cell run",
                      time.monotonic() - up)
        record_figure("test_live_restore_restart_keeps_the_kernel_and_the_event_stream", "docker",
                      "dockerd restart (live-restore)", "seconds dockerd took to come back", up - back)
        await interrupt_busy_cell(km, client)
        assert (await execute(client, "x"))["result"] == "42"

        # The event stream is subscribed again: a container killed now wakes the provisioner's wait().
        [container] = kernel_containers(daemon, kernel_id)
        waiter = asyncio.ensure_future(km.provisioner.wait())
        killed = time.monotonic()
        await asyncio.to_thread(daemon.cli, "kill", container)
        async with asyncio.timeout(15):
            code = await waiter
        record_figure("test_live_restore_restart_keeps_the_kernel_and_the_event_stream", "docker",
                      "dockerd restart (live-restore)", "seconds to see a container killed after the restart",
                      time.monotonic() - killed)
        assert code not in (None, 0) and await km.provisioner.poll() is not None
        assert not await km.is_alive()
        client.stop_channels()
    finally:
        await km.shutdown_kernel(now=True)
    assert kernel_containers(daemon, kernel_id, every=True) == []
    assert "Docker event stream broke" in caplog.text


async def test_restart_without_live_restore_reports_the_kernel_dead_with_its_exit(
    on_private_dockerd: PrivateDockerd, private_docker_spec: Callable[..., str], kernels_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    daemon = on_private_dockerd
    km, client = await running_kernel(daemon, False, private_docker_spec(), kernels_dir)
    kernel_id = km.kernel_id
    try:
        waiter = asyncio.ensure_future(km.provisioner.wait())

        fault = time.monotonic()
        await asyncio.to_thread(daemon.stop)  # dockerd stops its containers on the way down
        assert await km.provisioner.poll() is None, "a kernel was declared dead while Docker could not answer"
        await asyncio.to_thread(daemon.start)
        async with asyncio.timeout(20):
            code = await waiter
        seen = time.monotonic()
        record_figure("test_restart_without_live_restore_reports_the_kernel_dead_with_its_exit", "docker",
                      "dockerd restart (no live-restore)", "seconds from the fault to the kernel reported dead",
                      seen - fault)
        assert code is not None and await km.provisioner.poll() == code
        assert not await km.is_alive()
        ended = end_lines(caplog, kernel_id)
        assert ended and f"code {code}" in ended[0], caplog.text
        client.stop_channels()

        # What the restarter would do next works on the restarted daemon.
        await km.restart_kernel(now=True)
        client = await connect(km)
        assert (await execute(client, "2 + 2"))["result"] == "4"
        client.stop_channels()
    finally:
        await km.shutdown_kernel(now=True)
    assert kernel_containers(daemon, kernel_id, every=True) == []


async def test_kernel_that_died_while_dockerd_was_down_is_reported_when_it_is_back(
    on_private_dockerd: PrivateDockerd, private_docker_spec: Callable[..., str], kernels_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    daemon = on_private_dockerd
    km, client = await running_kernel(daemon, True, private_docker_spec(), kernels_dir)
    kernel_id = km.kernel_id
    try:
        client.stop_channels()
        waiter = asyncio.ensure_future(km.provisioner.wait())
        await asyncio.to_thread(daemon.stop)
        # the container's processes die while nobody can tell Docker: its shim keeps the exit status
        victims = processes_with_env("KERNEL_ID", kernel_id)
        assert victims, "the kernel's processes were not found"
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await wait_until(lambda: all(gone(pid) for pid in victims), 10, "the kernel's processes did not die")
        assert await km.provisioner.poll() is None, "a kernel was declared dead while Docker could not answer"
        assert not waiter.done()
        await asyncio.to_thread(daemon.start)
        up = time.monotonic()
        async with asyncio.timeout(20):
            code = await waiter
        record_figure("test_kernel_that_died_while_dockerd_was_down_is_reported_when_it_is_back", "docker",
                      "kernel died while dockerd was down (live-restore)",
                      "seconds from dockerd answering to the kernel reported dead", time.monotonic() - up)
        assert code == 137 and await km.provisioner.poll() == 137
        ended = end_lines(caplog, kernel_id)
        assert ended and "code 137" in ended[0], caplog.text
    finally:
        await km.shutdown_kernel(now=True)
    assert kernel_containers(daemon, kernel_id, every=True) == []
