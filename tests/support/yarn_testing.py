"""Steps every YARN kernel test takes, whatever the language: a restart lands on a new application while the old
one ends, and a shutdown ends the last application with its AM process gone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous.client import AsyncKernelClient

from kernelfleet.yarnlite import FINAL, Cluster


async def restart_on_new_app(km: AsyncKernelManager, cluster: Cluster, client: AsyncKernelClient,
                             reconnect: Callable[[AsyncKernelManager], Awaitable[AsyncKernelClient]]
                             ) -> AsyncKernelClient:
    """Restart the kernel; the new launch is a new app and the old app ends. Returns a client of the new kernel."""
    first = km.provisioner.application_id
    await km.restart_kernel()
    client.stop_channels()  # a restarted remote kernel may listen on new ports: reconnect, as jupyter_server does
    client = await reconnect(km)
    assert km.provisioner.application_id not in (None, first)
    await asyncio.wait_for(cluster.apps[first].ended.wait(), 60)
    return client


async def shut_down_ends_app(km: AsyncKernelManager, cluster: Cluster) -> None:
    """Shut the kernel down; its app must be in a final state and its AM process gone."""
    last = km.provisioner.application_id
    await km.shutdown_kernel()
    app = cluster.apps[last]
    assert app.state in FINAL and app.process is not None and app.process.returncode is not None
