"""Launch events of the SSH engine in process (a real EventLogger and subscriber): the host the balancer chose,
and the engine named ``ssh`` when the launcher runs on another host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from launch_events_testing import EventServer, assert_in_order, launched
from sshd import SshCluster


async def test_remote_host_is_reported(kernels_dir: Path, ssh_spec: Callable[..., str],
                                       ssh_cluster: SshCluster) -> None:
    server = EventServer()
    host = ssh_cluster.addresses[-1]
    km = server.manager(kernels_dir, ssh_spec("ssh_events", remote_hosts=[host]))
    async with launched(server, km) as events:
        assert_in_order(events, "accepted", "host_chosen", "launcher_started")
        assert {e["engine"] for e in events} == {"ssh"}
        assert next(e for e in events if e["phase"] == "host_chosen")["host"] == host
