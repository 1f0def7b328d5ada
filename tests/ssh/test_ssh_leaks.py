"""Mixed cycles over SSH leave nothing behind: no launcher or kernel on the host, no SSH channel or held connection
in the pool, no descriptor or asyncio task in the server (issue 11, item 5)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from leak_probe import ssh_pool_state
from mixed_cycles import FAILING_LAUNCHER_ARGV, assert_no_leaks, cycle_count, kernel_manager_for, measure_leaks
from sshd import SshCluster


async def test_mixed_cycles_leave_nothing_over_ssh(
    ssh_spec: Callable[..., str], ssh_cluster: SshCluster, kernels_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    server_id = f"leaks-ssh-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("KF_SERVER_ID", server_id)
    # One host: the warm-up cycle opens its connection, which the pool keeps (held open while idle, by design).
    host = ssh_cluster.addresses[0]
    name = ssh_spec("ssh_leaks", remote_hosts=[host])
    failing = ssh_spec("ssh_leaks_failing", argv=FAILING_LAUNCHER_ARGV, remote_hosts=[host])
    mkm = kernel_manager_for(kernels_dir)
    try:
        report = await measure_leaks("ssh", mkm, name, failing, server_id, cycles=cycle_count(8), at_once=4,
                                     state=ssh_pool_state)
    finally:
        await mkm.shutdown_all(now=True)
        mkm.context.destroy(linger=0)
    assert_no_leaks(report, "test_mixed_cycles_leave_nothing_over_ssh")
    assert report.after_state["holders"] == 0 and report.after_state["channels"] == 0, report.after_state
