"""The embedded default and the response broker (issue 12, items 3 and 9), with jupyter_client's
AsyncKernelManager, the real broker and real launchers.

* A local launch must not make the report port reachable from the network: the only listener is on
  loopback. A launch from elsewhere still gets a listener the network reaches, opened when it asks.
* An old (Gateway Provisioners) image's v1 report no longer fails the launch at once (anyone could
  forge one); its launch's timeout error names the switch that accepts such images.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from report_clients import ACCEPTED, sealed_report, send

from kernelfleet.provisioners.broker import ResponseBroker

pytestmark = pytest.mark.hostile

SUPPORT = Path(__file__).resolve().parents[1] / "support"
RESPONSE_SETTINGS = ("KF_RESPONSE_IP", "GP_RESPONSE_IP", "KF_RESPONSE_BIND_IP", "GP_RESPONSE_ADDR_ANY")


def listening_addresses() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Local addresses of the TCP sockets this process listens on, from the kernel's own socket tables."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    addresses = []
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(fields[1].split(":")[0])
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))
            addresses.append(ipaddress.ip_address(raw))
    return addresses


@pytest.fixture
async def fresh_broker_env(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    for name in RESPONSE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    yield
    broker = ResponseBroker._instances.get(asyncio.get_running_loop())
    if broker is not None:
        await broker.stop()


def manager(kernels_dir: Path, name: str) -> AsyncKernelManager:
    return AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]))


async def test_local_launch_listens_on_loopback_only(
    fresh_broker_env: None, kernels_dir: Path, make_kernelspec: Callable[..., str]
) -> None:
    km = manager(kernels_dir, make_kernelspec())
    await km.start_kernel()
    try:
        assert km.has_kernel
        listening = listening_addresses()
        assert listening, "the broker's listener is missing from /proc/net/tcp"
        assert all(address.is_loopback for address in listening), listening

        # a launch from another host (SSH, a container, a pod) asks for an address the network reaches
        broker = ResponseBroker._instances[asyncio.get_running_loop()]
        network_address = await broker.response_address_for(local=False)
        host = ipaddress.ip_address(network_address.rsplit(":", 1)[0].strip("[]"))
        assert not host.is_loopback, f"this machine has a public address; got {network_address}"
        assert host in listening_addresses()
        pending = broker.expect("kernel-from-elsewhere")
        report = sealed_report(broker.public_key, pending.kernel_id, pending.token)
        assert await send(network_address, report) == ACCEPTED
        assert (await pending.wait(10)).kernel_id == "kernel-from-elsewhere"
    finally:
        await km.shutdown_kernel(now=True)


async def test_configured_address_keeps_one_listener(
    fresh_broker_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GP_RESPONSE_ADDR_ANY / KF_RESPONSE_*: the operator chose, so one listener serves every launch as before."""
    monkeypatch.setenv("GP_RESPONSE_ADDR_ANY", "true")
    broker = await ResponseBroker.instance(port=0)
    assert await broker.response_address_for(local=True) == await broker.response_address_for(local=False)
    assert ipaddress.ip_address("0.0.0.0") in listening_addresses()


async def test_old_image_launch_times_out_naming_the_v1_switch(
    fresh_broker_env: None, kernels_dir: Path, make_kernelspec: Callable[..., str]
) -> None:
    argv = [sys.executable, str(SUPPORT / "gp_v1_launcher.py"), "{response_address}", "{public_key}", "{kernel_id}"]
    km = manager(kernels_dir, make_kernelspec("gp_v1_image", argv=argv, config={"launch_timeout": 3}))
    with pytest.raises(TimeoutError) as failure:
        await km.start_kernel()
    message = str(failure.value)
    assert km.kernel_id in message
    assert "c.ResponseBroker.accept_v1_reports = True (environment: KF_ACCEPT_V1_REPORTS=true)" in message
