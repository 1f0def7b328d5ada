"""A kernel on a remote host through sshd, driven like a notebook server drives it (AsyncKernelManager)."""

from __future__ import annotations

import base64
import glob
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from kf_testing import execute, interrupt_busy_cell
from ssh_testing import cmdlines_containing, file_mode, gone, process_env, processes_with_env, wait_until

from kernelfleet.provisioners.base import LaunchError


async def test_lifecycle_on_a_remote_host(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("KF_TEST_SERVER_ONLY", "server-secret")  # must never reach a remote kernel
    km = kernel_manager(ssh_spec(remote_hosts=["127.0.0.3"], env={"SPEC_VAR": "from the spec"}))
    await km.start_kernel(env={**os.environ, "KERNEL_FOO": "from the request"})
    prov = km.provisioner
    assert prov.assigned_host == "127.0.0.3" and prov.remote_launch is None
    token = prov.launch_env["LAUNCH_TOKEN"]
    assert cmdlines_containing(token) == []  # never on any command line of the "host"
    log_path = Path(prov.remote_log)
    assert file_mode(log_path) == 0o600 and prov.kernel_id in log_path.name
    launcher_env = process_env(prov.launcher_pid)
    assert launcher_env["SSH_CONNECTION"].split()[2] == "127.0.0.3"  # it really came in through that sshd
    assert "KF_TEST_SERVER_ONLY" not in launcher_env
    assert launcher_env["SPEC_VAR"] == "from the spec" and launcher_env["KERNEL_FOO"] == "from the request"

    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    assert (await execute(client, "x = 6 * 7\nx"))["result"] == "42"
    kernel_pid = int((await execute(client, "import os; os.getpid()"))["result"])
    await interrupt_busy_cell(km, client)
    assert (await execute(client, "x + 1"))["result"] == "43"

    old = [prov.launcher_pid, kernel_pid]
    await km.restart_kernel()
    client.stop_channels()
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    assert (await execute(client, "'x' in globals()"))["result"] == "False"
    await wait_until(lambda: all(gone(p) for p in old), 10, f"old processes {old} still running after restart")
    assert file_mode(log_path) is None  # the first launch's log went with it
    new_kernel = int((await execute(client, "import os; os.getpid()"))["result"])
    launcher, new_log = prov.launcher_pid, Path(prov.remote_log)
    secrets = [km.session.key.decode(), base64.b64encode(prov.comm_key).decode(), prov.launch_env["LAUNCH_TOKEN"]]

    client.stop_channels()
    await km.shutdown_kernel()
    await wait_until(lambda: gone(launcher) and gone(new_kernel), 10, "launcher or kernel still running")
    assert file_mode(new_log) is None and not km.has_kernel
    assert processes_with_env("KERNEL_ID", km.kernel_id) == []
    assert "running on 127.0.0.3" in caplog.text
    for secret in secrets:
        assert secret not in caplog.text


async def test_launcher_that_dies_at_once_fails_fast_with_its_output(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager], remote_log_dir: Path
) -> None:
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('cannot find image libs\\n'); sys.exit(3)"]
    km = kernel_manager(ssh_spec(argv=argv, remote_hosts=["127.0.0.2"], launch_timeout=60))
    started = time.perf_counter()
    with pytest.raises(LaunchError) as err:
        await km.start_kernel()
    elapsed = time.perf_counter() - started
    message = str(err.value)
    assert km.kernel_id in message and "exited with code 3" in message and "cannot find image libs" in message
    assert "on 127.0.0.2" in message
    assert glob.glob(f"{remote_log_dir}/kernelfleet-{km.kernel_id}-*") == []  # its tail is in the error instead
    assert elapsed < 5, f"took {elapsed:.1f}s"  # ~1-2 s on an idle machine; far from the 60 s timeout


async def test_launcher_that_never_reports_times_out_and_is_stopped(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager]
) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(120)"]
    km = kernel_manager(ssh_spec(argv=argv, remote_hosts=["127.0.0.2"], launch_timeout=2))
    with pytest.raises(TimeoutError, match=r"no launch report within 2s.*still running"):
        await km.start_kernel()
    await wait_until(lambda: processes_with_env("KERNEL_ID", km.kernel_id) == [], 10,
                     "the silent launcher was left running")


@pytest.mark.parametrize("now", [True, False], ids=["kill", "graceful"])
async def test_kill_falls_back_to_ssh_when_the_comm_port_is_gone(
    now: bool, ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hung launcher (SIGSTOP) answers nothing on its comm port: the host still shows its groups, so it is
    not taken for dead, and both a graceful shutdown (once its wait runs out) and kill signal them over SSH."""
    km = kernel_manager(ssh_spec(remote_hosts=["127.0.0.4"], comm_timeout=1))
    await km.start_kernel()
    prov = km.provisioner
    launcher, kernel_group = prov.launcher_pid, prov.kernel_pgid
    assert launcher and kernel_group
    os.kill(launcher, signal.SIGSTOP)  # the launcher stops answering on its comm port
    caplog.set_level(logging.DEBUG)
    await km.shutdown_kernel(now=now)
    await wait_until(lambda: gone(launcher) and gone(kernel_group), 10, "SSH kill fallback left processes")
    assert processes_with_env("KERNEL_ID", km.kernel_id) == []
    assert "signal KILL over SSH to groups" in caplog.text


async def test_bare_python_in_argv_means_the_hosts_own_python(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager]
) -> None:
    """jupyter_client swaps argv[0] "python3" for the server's interpreter; a remote host gets "python3" back.

    The host's python3 (on its PATH) has no kernelfleet installed, so the launch fails fast saying so — which
    shows the server's venv interpreter was not used there.
    """
    argv = ["python3", "-m", "kernelfleet.launcher", "--kernel-id", "{kernel_id}"]
    km = kernel_manager(ssh_spec(argv=argv, remote_hosts=["127.0.0.2"]))
    with pytest.raises(LaunchError, match=r"No module named '?kernelfleet"):
        await km.start_kernel()
