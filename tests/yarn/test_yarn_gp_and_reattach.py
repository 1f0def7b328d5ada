"""A kernelspec exactly as Gateway Provisioners writes it for YARN (``bin/run.sh``, ``SPARK_OPTS`` in env, an
empty provisioner config, the endpoint from ``GP_YARN_ENDPOINT``) runs unchanged — without its ``run.sh`` ever
being executed — and a kernel on YARN is reattached from its provisioner info by a new provisioner.

spark-submit here is the TEST-ONLY stand-in from ``kernelfleet.yarnlite`` that submits over YARN's REST API."""

from __future__ import annotations

import asyncio
import getpass
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from kf_testing import connect, execute, interrupted_reply, manager, start_busy_cell
from yarn_testing import gp_kernelspec_dir, gp_python_argv

from kernelfleet.provisioners.presence import Presence
from kernelfleet.provisioners.yarn.provisioner import YarnProvisioner
from kernelfleet.yarnlite import Cluster, ResourceManager


def write_gp_kernelspec(kernels: Path, spark_home: Path, shim: Path) -> Path:
    spec_dir = gp_kernelspec_dir(kernels, "yarn_spark_python")
    (spec_dir / "scripts").mkdir()
    (spec_dir / "scripts" / "launch_ipykernel.py").write_bytes(shim.read_bytes())
    python_root = sys.prefix
    spec = {
        "display_name": "Spark - Python (YARN Cluster Mode)",
        "language": "python",
        "metadata": {"kernel_provisioner": {"provisioner_name": "yarn-provisioner", "config": {}},
                     "supported_encryption": ["curve"]},
        "env": {
            "SPARK_HOME": str(spark_home),
            "PYSPARK_PYTHON": f"{python_root}/bin/python",
            "PYTHONPATH": f"{python_root}/lib/python3.11/site-packages:{spark_home}/python/lib/py4j-0.10.9.7-src.zip",
            "SPARK_OPTS": "--master yarn --deploy-mode cluster --name ${KERNEL_ID:-ERROR__NO__KERNEL_ID} "
                          "--conf spark.yarn.submit.waitAppCompletion=false "
                          "--conf spark.yarn.appMasterEnv.PYTHONUSERBASE=/home/${KERNEL_USERNAME}/.local "
                          f"--conf spark.yarn.appMasterEnv.PATH={python_root}/bin:$PATH "
                          "${KERNEL_EXTRA_SPARK_OPTS}",
            "LAUNCH_OPTS": "",
        },
        "argv": gp_python_argv(spec_dir, "--spark-context-initialization-mode", "none"),
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=2))
    return spec_dir


async def test_gp_written_kernelspec_runs_unchanged(kernels_dir: Path, rm: ResourceManager, cluster: Cluster,
                                                    spark_home: Path, launchers_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_YARN_ENDPOINT", rm.endpoint)
    monkeypatch.setenv("KERNEL_EXTRA_SPARK_OPTS", "--conf 'spark.yarn.appMasterEnv.EXTRA=two words'")
    spec_dir = write_gp_kernelspec(kernels_dir, spark_home, launchers_dir / "python" / "launch_ipykernel.py")
    km = manager(kernels_dir, "yarn_spark_python")
    await km.start_kernel()
    try:
        client = await connect(km)
        assert (await execute(client, "import os; os.environ['EXTRA']"))["result"] == "'two words'"
        user_base = (await execute(client, "os.environ['PYTHONUSERBASE']"))["result"]
        assert user_base == repr(f"/home/{getpass.getuser()}/.local")
        client.stop_channels()
    finally:
        await km.shutdown_kernel()
    (app,) = cluster.apps.values()
    assert app.name == km.kernel_id and app.app_type == "SPARK" and app.state == "FINISHED"
    assert not (spec_dir / "RUN_SH_WAS_EXECUTED").exists()


async def test_reattach_from_provisioner_info(kernels_dir: Path, make_kernelspec: Callable[..., str],
                                              rm: ResourceManager, cluster: Cluster) -> None:
    name = make_kernelspec("yarn_reattach", provisioner="yarn-provisioner",
                           config={"yarn_endpoint": rm.endpoint, "submission": "rest"})
    km = manager(kernels_dir, name)
    await km.start_kernel()
    try:
        info = await km.provisioner.get_provisioner_info()
        assert info["application_id"] == km.provisioner.application_id
        # A server that restarted: a new provisioner, only the saved info.
        again = YarnProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec,
                                yarn_endpoint=rm.endpoint)
        await again.load_provisioner_info(dict(info))
        assert await again.presence() is Presence.RUNNING and await again.poll() is None
        client = await connect(km)
        busy = await start_busy_cell(client)
        await again.send_signal(signal.SIGINT)
        await interrupted_reply(client, busy)
        client.shutdown()  # as jupyter_client's shutdown does: the kernel's own request first, then the launcher's
        client.stop_channels()
        await again.shutdown_requested()
        await asyncio.wait_for(again.wait(), 30)
        ended = cluster.apps[info["application_id"]]
        assert ended.state == "FINISHED", ended.diagnostics
        assert await again.presence() is Presence.GONE
        await again.cleanup()
    finally:
        await km.shutdown_kernel(now=True)
