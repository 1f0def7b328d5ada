"""An R kernel on YARN, for real: the pure-R launcher with IRkernel is the AM of a REST-submitted application
(no Spark needed), started, executed, interrupted, restarted and shut down through jupyter_client.

Needs R with IRkernel, jsonlite and openssl (fails, never skips, without them)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from kf_testing import manager
from rs_testing import SAY_STARTED_R, connect, execute, execute_settled, interrupt

from kernelfleet.provisioners.container_argv import launcher_args
from kernelfleet.yarnlite import FINAL, Cluster, ResourceManager

REPO = Path(__file__).resolve().parents[2]
R_LAUNCHER = REPO / "launchers" / "r" / "launch_IRkernel.R"
R_READY = 60.0

pytestmark = pytest.mark.timeout(300)


async def test_r_kernel_on_yarn(kernels_dir: Path, make_kernelspec: Callable[..., str], rm: ResourceManager,
                                cluster: Cluster) -> None:
    rscript = shutil.which("Rscript")
    if rscript is None:
        pytest.fail("Rscript is not installed: R kernels need R (Debian: apt-get install r-base-core "
                    "r-cran-irkernel r-cran-jsonlite r-cran-openssl)")
    name = make_kernelspec("yarn_r", provisioner="yarn-provisioner", language="R",
                           argv=[rscript, str(R_LAUNCHER), *launcher_args(spark_init_mode="none")],
                           env={"KERNEL_IP": "127.0.0.1"},
                           config={"yarn_endpoint": rm.endpoint, "submission": "rest", "launch_timeout": 120})
    km = manager(kernels_dir, name)
    await km.start_kernel()
    try:
        first_app = km.provisioner.application_id
        client = await connect(km, R_READY)
        assert (await execute(client, "x <- 6 * 7; x"))["result"] == "[1] 42"
        container = (await execute(client, 'Sys.getenv("CONTAINER_ID")'))["result"]
        assert "container_" in str(container)  # the kernel runs in the AM container
        reply = await interrupt(km, client, SAY_STARTED_R + "repeat { Sys.sleep(0.01) }")
        assert reply["status"] in ("abort", "aborted", "error"), reply  # IRkernel answers an interrupt so
        assert (await execute_settled(client, "x + 1"))["result"] == "[1] 43"
        await km.restart_kernel()
        client.stop_channels()
        client = await connect(km, R_READY)
        assert km.provisioner.application_id not in (None, first_app)
        await asyncio.wait_for(cluster.apps[first_app].ended.wait(), 30)
        assert (await execute(client, 'exists("x")'))["result"] == "[1] FALSE"
        client.stop_channels()
        last_app = km.provisioner.application_id
    finally:
        await km.shutdown_kernel()
    app = cluster.apps[last_app]
    assert app.state in FINAL and app.process is not None and app.process.returncode is not None
