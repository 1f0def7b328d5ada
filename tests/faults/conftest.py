"""Fixtures for the fault tests: a private dockerd to restart, the test sshds, kernelspecs for both.

Engine faults are made for real (a daemon stopped, a connection killed, a network cut); the shared
dockerd and the machine's network are never touched. Missing tools fail the tests with what to
install; nothing is skipped.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.container_argv import container_argv
from kernelfleet.provisioners.docker.engine import DockerEngine
from kernelfleet.provisioners.leases import close_all

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "ssh"))
from dockerd_testing import DockerdMissing, PrivateDockerd, check_tools
from kf_docker import IMAGE
from netns_testing import Netns, NetnsMissing
from sshd import SshCluster, SshdMissing, start_cluster


@pytest.fixture(scope="session")
def private_dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateDockerd]:
    """Our own dockerd (see dockerd_testing.py) with the kernel image loaded; removed with all it made."""
    try:
        check_tools()
    except DockerdMissing as err:
        pytest.fail(str(err))
    shared_bridges = set(os.listdir("/sys/class/net"))
    daemon = PrivateDockerd(tmp_path_factory.mktemp("dockerd"))
    try:
        daemon.start(live_restore=False)
        daemon.load_image()
    except (DockerdMissing, RuntimeError) as err:
        daemon.destroy()
        pytest.fail(f"the private dockerd for the fault tests could not be set up: {err}")
    yield daemon
    daemon.destroy()
    # The shared daemon must not lose a link to ours (dockerd --bridge=none deletes docker0 when it starts).
    assert shared_bridges <= set(os.listdir("/sys/class/net")) | {daemon.bridge}, "the private dockerd removed a link"


@pytest.fixture
async def on_private_dockerd(private_dockerd: PrivateDockerd, monkeypatch: pytest.MonkeyPatch
                             ) -> AsyncIterator[PrivateDockerd]:
    """The provisioners talk to the private dockerd; broker on 127.0.0.1; clients closed after the test."""
    if private_dockerd.process is None:  # a failed test may have left it stopped
        await asyncio.to_thread(private_dockerd.start)
    monkeypatch.setenv("DOCKER_HOST", private_dockerd.host)
    monkeypatch.setenv("KF_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("KF_RESPONSE_PORT", "0")
    await ResponseBroker.instance()
    yield private_dockerd
    await close_all()
    assert asyncio.get_running_loop() not in DockerEngine._instances


@pytest.fixture
def private_docker_spec(make_kernelspec: Callable[..., str]) -> Callable[..., str]:
    """A docker-provisioner kernelspec: host networking, the test image (as loaded into the private dockerd)."""

    def make(name: str = "faults_docker", **config: Any) -> str:
        return make_kernelspec(name, argv=container_argv(), provisioner="docker-provisioner",
                               config={"image_name": IMAGE, "network": "host", **config})

    return make


# ----------------------------------------------------------------------------------------- SSH hosts
@pytest.fixture(scope="session")
def fault_ssh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshCluster]:
    """Two sshd "hosts" of our own (127.0.0.5 and .6), so stopping one never disturbs the SSH suite's hosts."""
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("fault-sshd"), ("127.0.0.5", "127.0.0.6"))
    except SshdMissing as err:
        pytest.fail(str(err))
    yield cluster
    cluster.stop()


@pytest.fixture
async def ssh_fault_env(monkeypatch: pytest.MonkeyPatch, fault_ssh_cluster: SshCluster) -> AsyncIterator[SshCluster]:
    """Every fault host up again, broker on 127.0.0.1; the broker and SSH connections closed after the test."""
    monkeypatch.setenv("KF_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("KF_RESPONSE_PORT", "0")
    for host in fault_ssh_cluster.hosts:
        host.start()
    await ResponseBroker.instance()
    yield fault_ssh_cluster
    await close_all()


@pytest.fixture(scope="session")
def fault_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fault-remote-logs")


@pytest.fixture
def fault_ssh_spec(make_kernelspec: Callable[..., str], fault_ssh_cluster: SshCluster, fault_log_dir: Path
                   ) -> Callable[..., str]:
    """A distributed-provisioner kernelspec for the fault hosts; keyword arguments override its config."""
    counter = iter(range(1000))

    def make(**config: Any) -> str:
        return make_kernelspec(f"faults_ssh_{next(counter)}", config={
            **fault_ssh_cluster.provisioner_config(), "remote_log_dir": str(fault_log_dir), **config})

    return make


# ----------------------------------------------------------------------------------------- a partitionable host
@pytest.fixture
async def partitionable_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                             ) -> AsyncIterator[tuple[Netns, SshCluster]]:
    """An sshd "host" inside a network namespace of its own (see netns_testing.py); the broker listens on our end of
    the veth pair, which is the address launchers in the namespace reach. Everything is removed afterwards."""
    try:
        ns = Netns.create()
    except NetnsMissing as err:
        pytest.fail(f"the network namespace for the partition tests could not be made: {err}")
    try:
        cluster = start_cluster(tmp_path / "sshd", (ns.inner_ip,), prefix=ns.prefix, port=2222)
    except (SshdMissing, RuntimeError) as err:
        ns.destroy()
        pytest.fail(f"sshd in the network namespace did not start: {err}")
    monkeypatch.setenv("KF_RESPONSE_IP", ns.outer_ip)
    monkeypatch.setenv("KF_RESPONSE_PORT", "0")
    await ResponseBroker.instance()
    try:
        yield ns, cluster
    finally:
        ns.heal()
        await close_all()
        cluster.stop()
        ns.destroy()
