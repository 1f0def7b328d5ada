"""Python kernels on YARN, for real: yarnlite runs the AM (our launcher) as a local process; the provisioner
submits over REST or through spark-submit (a TEST-ONLY stand-in that submits over REST instead of Hadoop IPC),
follows the app and takes the launcher's report; jupyter_client starts, executes, interrupts, restarts and shuts
the kernel down."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_client import AsyncKernelManager
from kf_testing import connect, execute, interrupt_busy_cell, manager
from yarn_testing import restart_on_new_app, shut_down_ends_app

from kernelfleet.yarnlite import Cluster, ResourceManager


async def lifecycle(km: AsyncKernelManager, cluster: Cluster) -> None:
    """Start, execute, interrupt, restart, shut down; the app of each launch ends when the kernel does."""
    await km.start_kernel()
    try:
        app = km.provisioner.application_id
        assert app is not None and cluster.apps[app].state == "RUNNING"
        client = await connect(km)
        assert (await execute(client, "x = 6 * 7\nx"))["result"] == "42"
        import_env = await execute(client, "import os; os.environ.get('CONTAINER_ID', '')")
        assert "container_" in str(import_env["result"])  # the kernel runs in the AM container
        await interrupt_busy_cell(km, client)
        assert (await execute(client, "x + 1"))["result"] == "43"
        client = await restart_on_new_app(km, cluster, client, connect)
        assert (await execute(client, "'x' in dir()"))["result"] == "False"
        client.stop_channels()
        await shut_down_ends_app(km, cluster)
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)

async def test_rest_submission_lifecycle(kernels_dir: Path, make_kernelspec: Callable[..., str],
                                         rm: ResourceManager, cluster: Cluster) -> None:
    name = make_kernelspec("yarn_rest", provisioner="yarn-provisioner",
                           config={"yarn_endpoint": rm.endpoint, "submission": "rest"})
    await lifecycle(manager(kernels_dir, name), cluster)
    assert all(app.app_type == "KERNELFLEET" for app in cluster.apps.values())


async def test_yarn_spec_install_kernelspec_lifecycle(tmp_path: Path, rm: ResourceManager, cluster: Cluster,
                                                      spark_home: Path, launchers_dir: Path) -> None:
    """``jupyter yarn-spec install`` writes a spark-submit kernelspec; it runs as written."""
    prefix = tmp_path / "prefix"
    install = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kernelfleet.provisioners.cli.yarn", "install", "--kernel-name", "yarn_py",
        f"--prefix={prefix}", f"--yarn-endpoint={rm.endpoint}", f"--spark-home={spark_home}",
        f"--python-root={sys.prefix}", f"--launchers-dir={launchers_dir}", "--spark-init-mode=none",
        stderr=asyncio.subprocess.PIPE)
    _, stderr = await install.communicate()
    assert install.returncode == 0, stderr.decode()
    kernels = prefix / "share" / "jupyter" / "kernels"
    await lifecycle(manager(kernels, "yarn_py"), cluster)
    apps: list[Any] = list(cluster.apps.values())
    assert {a.app_type for a in apps} == {"SPARK"} and all(a.name == apps[0].name for a in apps)
