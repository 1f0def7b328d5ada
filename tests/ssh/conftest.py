"""Fixtures for distributed-provisioner over SSH: real sshd "hosts" on 127.0.0.2-4, the real launcher.

The sshds are started once per session (see sshd.py) and are never skipped: a missing
``/usr/sbin/sshd`` fails the tests with what to install. The launcher on every "host" is this
machine's venv python with kernelfleet.launcher; the broker is advertised on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager

from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.leases import close_all

sys.path.insert(0, str(Path(__file__).parent))
from ssh_testing import processes_through, wait_until
from sshd import SshCluster, SshdMissing, start_cluster


@pytest.fixture(scope="session")
def ssh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshCluster]:
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("sshd"))
    except SshdMissing as err:
        pytest.fail(str(err))
    yield cluster
    cluster.stop()


@pytest.fixture(autouse=True)
async def ssh_test_env(monkeypatch: pytest.MonkeyPatch, ssh_cluster: SshCluster) -> AsyncIterator[None]:
    """Broker on 127.0.0.1 (a free port), every host's sshd up; broker and SSH connections closed after."""
    monkeypatch.setenv("KF_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("KF_RESPONSE_PORT", "0")
    for host in ssh_cluster.hosts:
        host.start()
    await ResponseBroker.instance()
    yield
    await close_all()
    # every test must leave its "hosts" empty; whatever a failed test left is killed here
    try:
        await wait_until(lambda: not processes_through(ssh_cluster.port), 10, "")
    except AssertionError:
        left = processes_through(ssh_cluster.port)
        described = {pid: _cmdline(pid) for pid in left}
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pytest.fail(f"the test left processes on the SSH hosts (now killed): {described}")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


@pytest.fixture(scope="session")
def remote_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hosts' log directory for these tests, so kept logs (failed launches) stay out of /tmp."""
    return tmp_path_factory.mktemp("remote-logs")


@pytest.fixture
def ssh_spec(make_kernelspec: Callable[..., str], ssh_cluster: SshCluster, remote_log_dir: Path
             ) -> Callable[..., str]:
    """A distributed-provisioner kernelspec for the test hosts; keyword arguments override its config."""
    counter = iter(range(1000))

    def make(name: str | None = None, *, argv: list[str] | None = None, env: dict[str, str] | None = None,
             **config: Any) -> str:
        return make_kernelspec(name or f"ssh_{next(counter)}", argv=argv, env=env,
                               config={**ssh_cluster.provisioner_config(), "remote_log_dir": str(remote_log_dir),
                                       **config})

    return make


@pytest.fixture
def kernel_manager(kernels_dir: Path) -> Callable[..., AsyncKernelManager]:
    def make(name: str, **kwargs: Any) -> AsyncKernelManager:
        return AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(
            kernel_dirs=[str(kernels_dir)]), **kwargs)

    return make
