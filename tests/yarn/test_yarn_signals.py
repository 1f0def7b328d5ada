"""Signals other than SIGINT/SIGTERM/SIGKILL for a kernel on YARN (yarn-provisioner on yarnlite): protocol 2.2's
``signal`` op through the shared comm client reaches a handler a cell installed, also from a new provisioner that
reattached from the saved provisioner info (as after a server restart), which keeps the launcher's name for its
refusal messages."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from kf_testing import SIGNAL_HANDLER_CELL, check_signals, connect, execute, manager, printed

from kernelfleet.provisioners.yarn.provisioner import YarnProvisioner
from kernelfleet.yarnlite import ResourceManager

pytestmark = pytest.mark.timeout(180)


async def test_a_signal_reaches_a_yarn_kernel_also_after_reattaching(
    kernels_dir: Path, make_kernelspec: Callable[..., str], rm: ResourceManager
) -> None:
    name = make_kernelspec("yarn_signals", provisioner="yarn-provisioner",
                           config={"yarn_endpoint": rm.endpoint, "submission": "rest"})
    km = manager(kernels_dir, name)
    await km.start_kernel()
    try:
        client = await connect(km)
        try:
            await check_signals(km, client, signal.SIGUSR1, signal.SIGSEGV)
            info = await km.provisioner.get_provisioner_info()
            assert info["launcher"].startswith("python/")
            again = YarnProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, yarn_endpoint=rm.endpoint)
            await again.load_provisioner_info(dict(info))
            assert again.launcher_name == info["launcher"]
            assert (await execute(client, SIGNAL_HANDLER_CELL))["status"] == "ok"
            await again.send_signal(signal.SIGHUP)
            assert "KF-GOT SIGHUP" in await printed(client, "KF-GOT SIGHUP")
        finally:
            client.stop_channels()
    finally:
        await km.shutdown_kernel()
