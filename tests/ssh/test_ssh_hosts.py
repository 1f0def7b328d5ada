"""Host choice over real sshd hosts: round-robin, least-connection, failover, host keys, requested hosts."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from ssh_testing import process_env
from sshd import SshCluster
from traitlets import TraitError

from kernelfleet.provisioners.base import LaunchError


def host_of(km: AsyncKernelManager) -> str:
    """Where the launcher really runs: the sshd address in its SSH_CONNECTION, not our own bookkeeping."""
    return process_env(km.provisioner.launcher_pid)["SSH_CONNECTION"].split()[2]


async def start_all(kms: list[AsyncKernelManager]) -> None:
    await asyncio.gather(*(km.start_kernel() for km in kms))


async def shutdown_all(kms: list[AsyncKernelManager]) -> None:
    await asyncio.gather(*(km.shutdown_kernel(now=True) for km in kms if km.has_kernel), return_exceptions=True)


@pytest.mark.parametrize("algorithm", ["round-robin", "least-connection"])
async def test_six_kernels_spread_over_three_hosts(
    algorithm: str, ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager],
    ssh_cluster: SshCluster,
) -> None:
    # a host list of its own (reversed), so this test's balancer state is its own
    hosts = list(reversed(ssh_cluster.addresses))
    name = ssh_spec(f"spread_{algorithm}", remote_hosts=hosts, load_balancing_algorithm=algorithm)
    kms = [kernel_manager(name) for _ in range(6)]
    try:
        await start_all(kms)
        placed = Counter(host_of(km) for km in kms)
        assert placed == dict.fromkeys(hosts, 2), placed
        if algorithm == "least-connection":
            # free the two kernels of one host: the next two launches both go there
            emptied = hosts[1]
            leaving = [km for km in kms if host_of(km) == emptied]
            await shutdown_all(leaving)
            more = [kernel_manager(name) for _ in range(2)]
            kms += more
            for km in more:  # one after the other: each sees the counts the previous one left
                await km.start_kernel()
            assert [host_of(km) for km in more] == [emptied, emptied]
    finally:
        await shutdown_all(kms)


async def test_invalid_algorithm_is_rejected(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager]
) -> None:
    km = kernel_manager(ssh_spec(load_balancing_algorithm="bogus"))
    with pytest.raises(TraitError, match="load_balancing_algorithm"):
        await km.start_kernel()


async def test_requested_host_is_honoured_only_if_listed(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager], ssh_cluster: SshCluster
) -> None:
    name = ssh_spec(remote_hosts=ssh_cluster.addresses)
    with pytest.raises(PermissionError, match="not one of this kernelspec's remote_hosts"):
        await kernel_manager(name).start_kernel(env={**os.environ, "KERNEL_REMOTE_HOST": "127.0.0.9"})
    km = kernel_manager(name)
    await km.start_kernel(env={**os.environ, "KERNEL_REMOTE_HOST": "127.0.0.4"})
    try:
        assert host_of(km) == "127.0.0.4"
    finally:
        await km.shutdown_kernel(now=True)


async def test_a_host_that_is_down_is_skipped(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager], ssh_cluster: SshCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    down = ssh_cluster.host("127.0.0.3")
    down.stop()
    km = kernel_manager(ssh_spec(remote_hosts=["127.0.0.3", "127.0.0.2"]))  # the first choice is down
    try:
        await km.start_kernel()
        assert host_of(km) == "127.0.0.2"
        assert "host 127.0.0.3 skipped" in caplog.text and "Connection refused" in caplog.text
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
        down.start()


async def test_every_host_down_is_one_error_with_each_reason(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager], ssh_cluster: SshCluster,
    tmp_path: Path,
) -> None:
    down = ssh_cluster.host("127.0.0.4")
    down.stop()
    # 127.0.0.3 is up but its key is not trusted: a different kind of failure, also listed
    partial = tmp_path / "known_hosts"
    partial.write_text(ssh_cluster.host("127.0.0.4").known_hosts_line())
    km = kernel_manager(ssh_spec(remote_hosts=["127.0.0.4", "127.0.0.3"], known_hosts=str(partial)))
    try:
        with pytest.raises(LaunchError) as err:
            await km.start_kernel()
    finally:
        down.start()
    message = str(err.value)
    assert km.kernel_id in message and "no host could start the kernel" in message
    assert "127.0.0.4: cannot connect to 127.0.0.4" in message and "Connection refused" in message
    assert "127.0.0.3: SSH host key of 127.0.0.3" in message and "not trusted" in message


async def test_unknown_host_key_is_refused_with_a_clear_error(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager], ssh_cluster: SshCluster,
    tmp_path: Path,
) -> None:
    others = tmp_path / "known_hosts"
    others.write_text(ssh_cluster.host("127.0.0.3").known_hosts_line() + ssh_cluster.host("127.0.0.4")
                      .known_hosts_line())
    km = kernel_manager(ssh_spec(remote_hosts=["127.0.0.2"], known_hosts=str(others)))
    with pytest.raises(LaunchError, match=r"SSH host key of 127.0.0.2:\d+ is not trusted .*ssh-keyscan"):
        await km.start_kernel()
    missing = tmp_path / "nowhere"
    km = kernel_manager(ssh_spec(remote_hosts=["127.0.0.2"], known_hosts=str(missing)))
    with pytest.raises(LaunchError, match=r"known_hosts file .*nowhere does not exist"):
        await km.start_kernel()


async def test_host_key_checking_opt_out_is_explicit_and_logged(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With checking off an unknown host is reached (the launch itself then fails fast here, cheaply)."""
    caplog.set_level(logging.WARNING)
    argv = ["/bin/sh", "-c", "echo reached the host >&2; exit 5"]
    km = kernel_manager(ssh_spec(argv=argv, remote_hosts=["127.0.0.2"], known_hosts=str(tmp_path / "none"),
                                 host_key_checking=False))
    with pytest.raises(LaunchError, match=r"(?s)exited with code 5.*reached the host"):
        await km.start_kernel()
    assert "host key checking is OFF for 127.0.0.2" in caplog.text
