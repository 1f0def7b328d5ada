"""A Scala kernel on YARN, for real: the Java launcher with Apache Toree and Spark (local master) is the AM of a
REST-submitted application, started, executed (a Spark job too), interrupted, restarted and shut down.

Needs Java 17, the ``pyspark`` and ``toree`` packages in this venv and the launcher jar from
``tools/build-scala-launcher`` (fails, never skips, without them). A Toree start costs 15-60 s.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from kf_testing import manager
from rs_testing import SAY_STARTED_SCALA, connect, execute, execute_after_interrupt, interrupt
from yarn_testing import restart_on_new_app, shut_down_ends_app

from kernelfleet.provisioners.container_argv import launcher_args
from kernelfleet.yarnlite import Cluster, ResourceManager

REPO = Path(__file__).resolve().parents[2]
JAR = REPO / "launchers" / "scala" / "dist" / "kernelfleet-toree-launcher.jar"
JUPYTER = Path(sys.executable).with_name("jupyter")
SCALA_READY = 240.0

pytestmark = pytest.mark.timeout(900)


def scala_tools(root: Path) -> tuple[Path, dict[str, str]]:
    """(the installed launchers dir, the kernelspec env), or a failure that says what is missing."""
    java = shutil.which("java")
    spark = importlib.util.find_spec("pyspark")
    if java is None or spark is None or importlib.util.find_spec("toree") is None or not JAR.exists():
        pytest.fail("Scala kernels need java (Debian: openjdk-17-jre-headless), pyspark==3.5.* and toree==0.5.0 in "
                    f"this venv, and {JAR.relative_to(REPO)} (tools/build-scala-launcher)")
    install = subprocess.run([str(JUPYTER), "image-bootstrap", "install", "--languages", "scala", "--install-dir",
                              str(root)], capture_output=True, text=True, timeout=120)
    assert install.returncode == 0, install.stderr
    spark_home = next(iter(spark.submodule_search_locations or []))
    env = {"SPARK_HOME": spark_home, "JAVA_HOME": str(Path(os.path.realpath(java)).parents[1]),
           "SPARK_LOCAL_IP": "127.0.0.1", "KERNEL_IP": "127.0.0.1"}
    return root / "kernel-launchers", env


async def test_scala_kernel_on_yarn(tmp_path: Path, kernels_dir: Path, make_kernelspec: Callable[..., str],
                                    rm: ResourceManager, cluster: Cluster) -> None:
    launchers, env = await asyncio.to_thread(scala_tools, tmp_path / "bin")
    name = make_kernelspec("yarn_scala", provisioner="yarn-provisioner", language="scala", env=env,
                           argv=[str(launchers / "scala" / "bin" / "run.sh"), *launcher_args(spark_init_mode="lazy")],
                           config={"yarn_endpoint": rm.endpoint, "submission": "rest", "launch_timeout": 240})
    km = manager(kernels_dir, name)
    await km.start_kernel()
    try:
        client = await connect(km, SCALA_READY)
        assert (await execute(client, "1+1"))["result"] == "2"
        job = await execute(client, "sc.parallelize(1 to 100).sum()")
        assert job["status"] == "ok" and job["result"] == "5050.0", job
        reply = await interrupt(km, client, SAY_STARTED_SCALA + "Thread.sleep(300000); 7")
        assert reply["status"] == "error" and reply["ename"] == "java.lang.InterruptedException", reply
        assert (await execute_after_interrupt(client, "1+2"))["result"] == "3"
        client = await restart_on_new_app(km, cluster, client, lambda k: connect(k, SCALA_READY))
        assert (await execute(client, "2+3"))["result"] == "5"
        client.stop_channels()
        await shut_down_ends_app(km, cluster)
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
