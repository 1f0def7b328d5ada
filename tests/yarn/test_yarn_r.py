"""An R kernel on YARN, for real: the pure-R launcher with IRkernel is the AM of a REST-submitted application
(no Spark needed), started, executed, interrupted, restarted and shut down through jupyter_client; and a kernelspec
as Gateway Provisioners writes ``yarn_spark_r`` (``bin/run.sh``, our launcher in its ``scripts/``) runs unchanged
without its run.sh, through spark-submit (the TEST-ONLY stand-in that submits over YARN's REST API).

Needs R with IRkernel, jsonlite and openssl (fails, never skips, without them)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from kf_testing import manager
from rs_testing import SAY_STARTED_R, connect, execute, execute_settled, interrupt
from yarn_testing import gp_kernelspec_dir, gp_kernelspec_runs_unchanged, restart_on_new_app, shut_down_ends_app

from kernelfleet.provisioners.container_argv import launcher_args
from kernelfleet.yarnlite import Cluster, ResourceManager

REPO = Path(__file__).resolve().parents[2]
R_LAUNCHER = REPO / "launchers" / "r" / "launch_IRkernel.R"
R_READY = 60.0

pytestmark = pytest.mark.timeout(300)


def rscript_or_fail() -> str:
    rscript = shutil.which("Rscript")
    if rscript is None:
        pytest.fail("Rscript is not installed: R kernels need R (Debian: apt-get install r-base-core "
                    "r-cran-irkernel r-cran-jsonlite r-cran-openssl)")
    return rscript


async def test_r_kernel_on_yarn(kernels_dir: Path, make_kernelspec: Callable[..., str], rm: ResourceManager,
                                cluster: Cluster) -> None:
    rscript = rscript_or_fail()
    name = make_kernelspec("yarn_r", provisioner="yarn-provisioner", language="R",
                           argv=[rscript, str(R_LAUNCHER), *launcher_args(spark_init_mode="none")],
                           env={"KERNEL_IP": "127.0.0.1"},
                           config={"yarn_endpoint": rm.endpoint, "submission": "rest", "launch_timeout": 120})
    km = manager(kernels_dir, name)
    await km.start_kernel()
    try:
        client = await connect(km, R_READY)
        assert (await execute(client, "x <- 6 * 7; x"))["result"] == "[1] 42"
        container = (await execute(client, 'Sys.getenv("CONTAINER_ID")'))["result"]
        assert "container_" in str(container)  # the kernel runs in the AM container
        reply = await interrupt(km, client, SAY_STARTED_R + "repeat { Sys.sleep(0.01) }")
        assert reply["status"] in ("abort", "aborted", "error"), reply  # IRkernel answers an interrupt so
        assert (await execute_settled(client, "x + 1"))["result"] == "[1] 43"
        client = await restart_on_new_app(km, cluster, client, lambda k: connect(k, R_READY))
        assert (await execute(client, 'exists("x")'))["result"] == "[1] FALSE"
        client.stop_channels()
        await shut_down_ends_app(km, cluster)
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)


async def test_gp_written_r_kernelspec_runs_unchanged(kernels_dir: Path, rm: ResourceManager, cluster: Cluster,
                                                      spark_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rscript_or_fail()
    monkeypatch.setenv("GP_YARN_ENDPOINT", rm.endpoint)
    spec_dir = gp_kernelspec_dir(kernels_dir, "yarn_spark_r")
    shutil.copytree(R_LAUNCHER.parent, spec_dir / "scripts", ignore=shutil.ignore_patterns("tests", "BUILD", "*.md"))
    (spec_dir / "kernel.json").write_text(json.dumps({
        "display_name": "Spark - R (YARN Cluster Mode)", "language": "R",
        "metadata": {"kernel_provisioner": {"provisioner_name": "yarn-provisioner", "config": {"launch_timeout": 120}}},
        "env": {"SPARK_HOME": str(spark_home), "KERNEL_IP": "127.0.0.1",
                "SPARK_OPTS": "--master yarn --deploy-mode cluster --name ${KERNEL_ID:-ERROR__NO__KERNEL_ID} "
                              "--conf spark.yarn.submit.waitAppCompletion=false "
                              "--conf spark.yarn.appMasterEnv.KERNEL_IP=127.0.0.1 ${KERNEL_EXTRA_SPARK_OPTS}",
                "LAUNCH_OPTS": ""},
        "argv": [str(spec_dir / "bin" / "run.sh"), *launcher_args(spark_init_mode="none")],
    }))
    await gp_kernelspec_runs_unchanged(kernels_dir, "yarn_spark_r", cluster, lambda k: connect(k, R_READY),
                                       "x <- 6 * 7; x", "[1] 42", "launch_IRkernel.R", R_READY)
