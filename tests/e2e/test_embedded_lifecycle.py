"""A kernel through the full protocol on the embedded default (distributed-provisioner, localhost):
the real launcher, the real broker, jupyter_client's AsyncKernelManager — what a notebook server does."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.provisioning import KernelProvisionerFactory
from kf_testing import STARTED, execute, interrupt_busy_cell, interrupted_reply, start_busy_cell

from kernelfleet.provisioners.base import LaunchError


def manager(kernels_dir: Path, name: str) -> AsyncKernelManager:
    return AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]))


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0); it is gone for our purpose once its state is Z
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def wait_gone(pids: list[int], within: float) -> float:
    started = time.perf_counter()
    while not all(gone(p) for p in pids):
        if time.perf_counter() - started > within:
            alive = [p for p in pids if not gone(p)]
            raise AssertionError(f"processes {alive} still alive {within}s after shutdown")
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


@pytest.fixture
async def started(kernels_dir: Path, make_kernelspec: Callable[..., str]) -> AsyncIterator[AsyncKernelManager]:
    km = manager(kernels_dir, make_kernelspec())
    await km.start_kernel()
    yield km
    if km.has_kernel:
        await km.shutdown_kernel(now=True)


async def test_full_lifecycle(started: AsyncKernelManager, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    km = started
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=30)

    reply = await execute(client, "x = 6 * 7\nx")
    assert reply["status"] == "ok" and reply["result"] == "42"
    kernel_pid = int((await execute(client, "import os; os.getpid()"))["result"])

    # interrupt a busy cell
    busy = await start_busy_cell(client, f"print({STARTED!r})\nwhile True:\n    pass")
    await km.interrupt_kernel()
    await interrupted_reply(client, busy)
    assert (await execute(client, "x + 1"))["result"] == "43"

    # restart: a fresh kernel process, same kernel id, state gone
    old_launcher = km.provisioner.local_process.pid
    await km.restart_kernel()
    client.stop_channels()  # a restarted remote kernel may listen on new ports: reconnect, as jupyter_server does
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=30)
    assert gone(old_launcher) and gone(kernel_pid)
    reply = await execute(client, "'x' in globals()")
    assert reply["result"] == "False"
    new_kernel_pid = int((await execute(client, "import os; os.getpid()"))["result"])
    launcher_pid = km.provisioner.local_process.pid
    secrets = [
        km.session.key.decode(),
        base64.b64encode(km.provisioner.comm_key).decode(),
        km.provisioner.launch_env["LAUNCH_TOKEN"],
    ]

    # shutdown: launcher and kernel gone within half a second
    client.stop_channels()
    started_at = time.perf_counter()
    await km.shutdown_kernel()
    await wait_gone([launcher_pid, new_kernel_pid], within=0.5 + (time.perf_counter() - started_at))
    assert not km.has_kernel

    assert "Kernel" in caplog.text  # the lifecycle was logged at DEBUG, launcher output included ...
    for secret in secrets:  # ... and no secret reached any log line
        assert secret not in caplog.text


async def test_launcher_that_dies_early_fails_with_its_exit(
    kernels_dir: Path, make_kernelspec: Callable[..., str]
) -> None:
    """The launch fails on the launcher's exit, not on the launch timeout (made long here); how fast is
    tools/bench/stop_latency.py's business (target: within a second)."""
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('cannot find image libs\\n'); sys.exit(3)"]
    km = manager(kernels_dir, make_kernelspec("dies", argv=argv, config={"launch_timeout": 300}))
    started = time.perf_counter()
    with pytest.raises(LaunchError) as err:
        await km.start_kernel()
    assert time.perf_counter() - started < 60
    message = str(err.value)
    assert km.kernel_id in message and "exited with code 3" in message and "cannot find image libs" in message


async def test_launcher_that_never_reports_times_out_and_is_killed(
    kernels_dir: Path, make_kernelspec: Callable[..., str]
) -> None:
    argv = [sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(60)"]
    km = manager(kernels_dir, make_kernelspec("silent", argv=argv, config={"launch_timeout": 1}))
    with pytest.raises(TimeoutError, match=r"no launch report within 1s"):
        await km.start_kernel()


async def test_request_launch_timeout_overrides_the_kernelspec(
    kernels_dir: Path, make_kernelspec: Callable[..., str]
) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    km = manager(kernels_dir, make_kernelspec("silent2", argv=argv, config={"launch_timeout": 60}))
    started = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"within 0.5s"):
        await km.start_kernel(env={**os.environ, "KERNEL_LAUNCH_TIMEOUT": "0.5"})
    assert time.perf_counter() - started < 3


async def test_root_is_refused_by_default(kernels_dir: Path, make_kernelspec: Callable[..., str]) -> None:
    km = manager(kernels_dir, make_kernelspec())
    with pytest.raises(PermissionError, match="'root' is not allowed"):
        await km.start_kernel(env={**os.environ, "KERNEL_USERNAME": "root"})


async def test_authorized_users_from_the_kernelspec(kernels_dir: Path, make_kernelspec: Callable[..., str]) -> None:
    km = manager(kernels_dir, make_kernelspec(config={"authorized_users": ["alice"]}))
    with pytest.raises(PermissionError, match="'bob' is not in this kernelspec's authorized users"):
        await km.start_kernel(env={**os.environ, "KERNEL_USERNAME": "bob"})


async def test_bad_port_range_is_a_clear_error(kernels_dir: Path, make_kernelspec: Callable[..., str]) -> None:
    km = manager(kernels_dir, make_kernelspec(config={"port_range": "40000..40010"}))
    with pytest.raises(ValueError, match=r"invalid port_range.*at least 1000"):
        await km.start_kernel()


async def test_malformed_kernelspec_config_is_a_clear_error(
    kernels_dir: Path, make_kernelspec: Callable[..., str]
) -> None:
    km = manager(kernels_dir, make_kernelspec(config={"launch_timeout": "soon"}))
    with pytest.raises(Exception, match="launch_timeout"):
        await km.start_kernel()


async def test_unknown_remote_host_requested_by_client_is_refused(
    kernels_dir: Path, make_kernelspec: Callable[..., str]
) -> None:
    km = manager(kernels_dir, make_kernelspec())
    with pytest.raises(PermissionError, match="not one of this kernelspec's remote_hosts"):
        await km.start_kernel(env={**os.environ, "KERNEL_REMOTE_HOST": "evil.example"})


async def test_port_range_is_honoured(kernels_dir: Path, make_kernelspec: Callable[..., str]) -> None:
    km = manager(kernels_dir, make_kernelspec(config={"port_range": "42000..42999"}))
    await km.start_kernel()
    try:
        info = km.get_connection_info()
        ports = [info[p] for p in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")]
        assert all(42000 <= p <= 42999 for p in [*ports, km.provisioner.comm_port])
    finally:
        await km.shutdown_kernel(now=True)


async def test_reattach_after_the_manager_is_thrown_away(
    kernels_dir: Path, make_kernelspec: Callable[..., str]
) -> None:
    name = make_kernelspec()
    km = manager(kernels_dir, name)
    await km.start_kernel()
    info = await km.provisioner.get_provisioner_info()
    kernel_id = km.kernel_id
    launcher_pid = km.provisioner.local_process.pid
    km.provisioner.local_process = None  # what a restarted host process has: no child handle at all
    del km

    km2 = AsyncKernelManager(
        kernel_id=kernel_id, kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)])
    )
    km2.provisioner = KernelProvisionerFactory.instance(parent=km2.parent).create_provisioner_instance(
        kernel_id, km2.kernel_spec, parent=km2
    )
    await km2.provisioner.load_provisioner_info(info)
    km2.load_connection_info(info["connection_info"])
    assert await km2.is_alive()
    client = km2.client()
    client.start_channels()
    await client.wait_for_ready(timeout=30)
    await interrupt_busy_cell(km2, client)
    client.stop_channels()
    await km2.shutdown_kernel()
    # The launcher is not km2's child; shutdown must still answer only once it and its kernel are gone.
    assert gone(launcher_pid) and gone(int(info["kernel_pgid"])), "the kernel outlived shutdown_kernel()"
