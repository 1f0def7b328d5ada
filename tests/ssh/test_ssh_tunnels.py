"""Tunnelling and reattach: a kernel bound to an address only its "host" uses, reached through SSH forwards.

The launcher binds the kernel to 127.0.0.5 (KERNEL_IP); nothing listens on 127.0.0.1 at the kernel's
ports, so a working kernel proves every byte went through the asyncssh local forwards.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from jupyter_client import AsyncKernelManager
from jupyter_client.provisioning import KernelProvisionerFactory
from kf_testing import execute, interrupt_busy_cell
from ssh_testing import gone, processes_with_env, wait_until

from kernelfleet.provisioners.ssh.connections import connection_pool
from kernelfleet.provisioners.ssh.tunnels import KERNEL_PORTS

HIDDEN_IP = "127.0.0.5"


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_tunnelled_kernel_and_reattach_after_the_manager_is_thrown_away(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager],
) -> None:
    name = ssh_spec(remote_hosts=["127.0.0.3"], tunneling=True)
    km = kernel_manager(name)
    await km.start_kernel(env={**os.environ, "KERNEL_IP": HIDDEN_IP})
    prov = km.provisioner
    info = km.get_connection_info()
    remote = prov.tunnels.remote_ports
    assert info["ip"] == "127.0.0.1" and prov.tunnels.remote_ip == HIDDEN_IP
    assert prov.comm_host == "127.0.0.1" and prov.comm_port == prov.tunnels.local_ports["comm_port"]
    for port_name in (*KERNEL_PORTS, "comm_port"):
        assert refused("127.0.0.1", remote[port_name]) or remote[port_name] == prov.tunnels.local_ports[port_name]
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    assert (await execute(client, "6 * 7"))["result"] == "42"
    await interrupt_busy_cell(km, client)  # the comm port, through its tunnel

    # the SSH connection drops under a live kernel: the next poll reopens the same forwards
    before = dict(prov.tunnels.local_ports)
    await connection_pool().close()
    assert await km.is_alive()
    assert prov.tunnels.local_ports == before
    # the client's sockets reconnect by themselves; what was in flight when the link dropped may be lost
    # (an iopub subscriber that rejoins misses what was published meanwhile), so allow a retry
    for attempt in range(3):
        try:
            assert (await execute(client, "7 * 7", timeout=10))["result"] == "49"
            break
        except TimeoutError:
            if attempt == 2:
                raise
    client.stop_channels()

    # the server process "restarts": its manager, provisioner and every SSH connection (and forward) are gone
    persisted = await prov.get_provisioner_info()
    kernel_id, launcher = km.kernel_id, prov.launcher_pid
    local_ports = dict(prov.tunnels.local_ports)
    del km, prov
    await connection_pool().close()
    await wait_until(lambda: refused("127.0.0.1", local_ports["shell_port"]), 5, "forward still open")
    assert not gone(launcher)

    km2 = kernel_manager(name, kernel_id=kernel_id)
    km2.provisioner = KernelProvisionerFactory.instance(parent=km2.parent).create_provisioner_instance(
        kernel_id, km2.kernel_spec, parent=km2
    )
    await km2.provisioner.load_provisioner_info(persisted)
    km2.load_connection_info(persisted["connection_info"])
    assert km2.provisioner.tunnels.local_ports == local_ports  # the same local ends as before
    assert await km2.is_alive()
    client = km2.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    assert (await execute(client, "'reattached'"))["result"] == "'reattached'"
    await interrupt_busy_cell(km2, client)
    client.stop_channels()
    await km2.shutdown_kernel()
    await wait_until(lambda: processes_with_env("KERNEL_ID", kernel_id) == [], 10, "kernel processes left")
    assert refused("127.0.0.1", local_ports["shell_port"]) and refused("127.0.0.1", local_ports["comm_port"])
