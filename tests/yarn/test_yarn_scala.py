"""Scala kernels on YARN, for real: the Java launcher with Apache Toree is the AM of the application, started,
executed, interrupted, restarted and shut down through jupyter_client — once as a REST-submitted AM (our run.sh,
Spark with a local master: a Spark job runs too), once from the kernelspec ``jupyter yarn-spec install --language
scala`` writes (spark-submit in cluster mode of the launcher jar with Toree in ``--jars``), and a kernelspec as
Gateway Provisioners writes ``yarn_spark_scala`` (``bin/run.sh``, ``__TOREE_SPARK_OPTS__``, the jars in its
``lib/``, our launcher jar in place of GP's) runs unchanged without its run.sh.

spark-submit in the last two is the TEST-ONLY stand-in from ``kernelfleet.yarnlite`` that submits over YARN's REST
API; the AM it describes runs the launcher's JVM as Spark's ApplicationMaster would run the driver (Spark's jars
on the classpath, the app's Spark settings as system properties), but with a local master: there is no YARN
scheduler backend for executors, so these tests claim nothing about Spark jobs on YARN.

Needs Java 17, the ``pyspark`` and ``toree`` packages in this venv and the launcher jar from
``tools/build-scala-launcher`` (fails, never skips, without them). A Toree start costs 15-60 s.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from kf_testing import manager
from rs_testing import SAY_STARTED_SCALA, connect, execute, execute_after_interrupt, interrupt
from yarn_testing import gp_kernelspec_dir, gp_kernelspec_runs_unchanged, restart_on_new_app, shut_down_ends_app

from kernelfleet.provisioners.container_argv import launcher_args
from kernelfleet.yarnlite import FINAL, Cluster, ResourceManager
from kernelfleet.yarnlite.testing import make_spark_home

REPO = Path(__file__).resolve().parents[2]
JAR = REPO / "launchers" / "scala" / "dist" / "kernelfleet-toree-launcher.jar"
JUPYTER = Path(sys.executable).with_name("jupyter")
SCALA_READY = 240.0
FIRST_CELL = 240.0  # Toree compiles its interpreter on the first cell: minutes on a loaded 2-core machine

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


async def scala_lifecycle(km: AsyncKernelManager, cluster: Cluster, *, spark_job: bool) -> None:
    """Start, execute (a Spark job when the AM has a usable master), interrupt, restart, shut down."""
    await km.start_kernel()
    try:
        client = await connect(km, SCALA_READY)
        assert (await execute(client, "1+1", FIRST_CELL))["result"] == "2"
        if spark_job:
            job = await execute(client, "sc.parallelize(1 to 100).sum()")
            assert job["status"] == "ok" and job["result"] == "5050.0", job
        container = await execute(client, 'sys.env.getOrElse("CONTAINER_ID", "")')
        assert "container_" in str(container["result"]), container  # the kernel runs in the AM container
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


async def test_scala_kernel_on_yarn(tmp_path: Path, kernels_dir: Path, make_kernelspec: Callable[..., str],
                                    rm: ResourceManager, cluster: Cluster) -> None:
    launchers, env = await asyncio.to_thread(scala_tools, tmp_path / "bin")
    name = make_kernelspec("yarn_scala", provisioner="yarn-provisioner", language="scala", env=env,
                           argv=[str(launchers / "scala" / "bin" / "run.sh"), *launcher_args(spark_init_mode="lazy")],
                           config={"yarn_endpoint": rm.endpoint, "submission": "rest", "launch_timeout": 240})
    await scala_lifecycle(manager(kernels_dir, name), cluster, spark_job=True)


async def test_yarn_spec_install_scala_kernelspec(tmp_path: Path, rm: ResourceManager, cluster: Cluster) -> None:
    """``jupyter yarn-spec install --language scala`` writes a spark-submit kernelspec; it runs as written, and the
    launch token reaches the AM through the 0600 properties file only (never an argv)."""
    launchers, env = await asyncio.to_thread(scala_tools, tmp_path / "bin")
    spark_home = make_spark_home(tmp_path / "spark", jars=Path(env["SPARK_HOME"]) / "jars")
    prefix = tmp_path / "prefix"
    install = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kernelfleet.provisioners.cli.yarn", "install", "--language", "scala",
        f"--prefix={prefix}", f"--yarn-endpoint={rm.endpoint}", f"--spark-home={spark_home}",
        f"--launchers-dir={launchers}", "--launch-timeout=240", stderr=asyncio.subprocess.PIPE)
    _, stderr = await install.communicate()
    assert install.returncode == 0, stderr.decode()
    kernels = prefix / "share" / "jupyter" / "kernels"
    spec = json.loads((kernels / "yarn_spark_scala" / "kernel.json").read_text())
    assert spec["language"] == "scala" and spec["argv"][0] == str(spark_home / "bin" / "spark-submit")
    await scala_lifecycle(manager(kernels, "yarn_spark_scala"), cluster, spark_job=False)
    apps = list(cluster.apps.values())
    assert len(apps) == 2 and {a.app_type for a in apps} == {"SPARK"} and all(a.state in FINAL for a in apps)
    for app in apps:
        assert "LAUNCH_TOKEN" in app.env and app.env["LAUNCH_TOKEN"] not in app.command
        assert "kernelfleet.toree.ToreeLauncher" in app.command


async def test_gp_written_scala_kernelspec_runs_unchanged(tmp_path: Path, kernels_dir: Path, rm: ResourceManager,
                                                          cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    launchers, env = await asyncio.to_thread(scala_tools, tmp_path / "bin")
    spark_home = make_spark_home(tmp_path / "spark", jars=Path(env["SPARK_HOME"]) / "jars")
    monkeypatch.setenv("GP_YARN_ENDPOINT", rm.endpoint)
    spec_dir = gp_kernelspec_dir(kernels_dir, "yarn_spark_scala")
    shutil.copytree(launchers / "scala" / "lib", spec_dir / "lib")  # the operator's step: our jar beside Toree's
    (spec_dir / "kernel.json").write_text(json.dumps({
        "language": "scala", "display_name": "Spark - Scala (YARN Cluster Mode)",
        "metadata": {"kernel_provisioner": {"provisioner_name": "yarn-provisioner", "config": {"launch_timeout": 240}}},
        "env": {"SPARK_HOME": str(spark_home),
                "__TOREE_SPARK_OPTS__": "--master yarn --deploy-mode cluster --name ${KERNEL_ID:-ERROR__NO__KERNEL_ID} "
                                        "--conf spark.yarn.submit.waitAppCompletion=false --conf "
                                        "spark.yarn.am.waitTime=1d ${KERNEL_EXTRA_SPARK_OPTS}",
                "__TOREE_OPTS__": "--alternate-sigint USR2", "LAUNCH_OPTS": "", "DEFAULT_INTERPRETER": "Scala"},
        "argv": [str(spec_dir / "bin" / "run.sh"), *launcher_args(spark_init_mode="lazy")],
    }))
    await gp_kernelspec_runs_unchanged(kernels_dir, "yarn_spark_scala", cluster, lambda k: connect(k, SCALA_READY),
                                       "6*7", "42", "kernelfleet.toree.ToreeLauncher", FIRST_CELL)
