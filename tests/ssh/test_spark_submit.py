"""Spark kernels through spark-submit (``spark_submit``) against a REAL Spark standalone cluster on loopback.

The cluster (a master and a worker from the venv's pyspark distribution) is started once for the module. A Python
kernel launched by distributed-provisioner runs its launcher under ``spark-submit --master spark://...``: its
``spark``/``sc``/``sql`` are that driver, its job runs on the worker's executor (the master's JSON lists the
application with cores granted), an interrupt cancels the running Spark job (the test waits until the driver's
REST API shows the job running), and after shutdown the master lists the application as completed, none active.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client import AsyncKernelManager
from kf_testing import connect, execute
from real_users import UsersMissing, processes_of, real_users
from spark_standalone import SparkMissing, SparkStandalone, driver_api, start_standalone
from ssh_testing import wait_until

import kernelfleet.bootstrap
from kernelfleet.provisioners.container_argv import launcher_args

pytestmark = pytest.mark.timeout(900)
LONG_JOB = "spark.range(0, 10**13, 1, 2).selectExpr('sum(id)').collect()"
WITHIN = 180.0  # Spark on a loaded 2-core host: bounds the waits, not an expectation


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkStandalone]:
    try:
        running = start_standalone(tmp_path_factory.mktemp("spark"))
    except SparkMissing as err:
        pytest.fail(str(err))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def launchers_dir() -> Iterator[Path]:
    """What ``jupyter image-bootstrap install`` puts on a host for Python: the launcher's script file, readable by
    every user (pytest's own temporary directories are not) as an installed launcher is."""
    with tempfile.TemporaryDirectory(prefix="kf-launchers-") as name:
        root = Path(name)
        root.chmod(0o755)
        (root / "python").mkdir(mode=0o755)
        shutil.copy(Path(kernelfleet.bootstrap.__file__).parent / "launch_ipykernel.py", root / "python")
        (root / "python" / "launch_ipykernel.py").chmod(0o644)
        yield root


def spark_spec(ssh_spec: Callable[..., str], cluster: SparkStandalone, launchers_dir: Path, **config: Any) -> str:
    argv = [sys.executable, str(launchers_dir / "python" / "launch_ipykernel.py"),
            *launcher_args(spark_init_mode="lazy")]
    env = {"SPARK_HOME": cluster.env["SPARK_HOME"], "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_OPTS": f"--master {cluster.master} --driver-memory 512m --executor-memory 512m "
                         "--conf spark.ui.port=0 --conf spark.ui.showConsoleProgress=false "
                         "--name kf-${KERNEL_ID} ${KERNEL_EXTRA_SPARK_OPTS}"}
    return ssh_spec(argv=argv, env=env, remote_hosts=["localhost"], spark_submit=True, launch_timeout=WITHIN,
                    **config)


async def _running_jobs(ui_url: str, app_id: str) -> list[dict[str, Any]]:
    jobs = await asyncio.to_thread(driver_api, ui_url, f"applications/{app_id}/jobs")
    return [job for job in jobs if job["status"] == "RUNNING"]


async def test_python_kernel_on_a_standalone_cluster(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager], cluster: SparkStandalone,
    launchers_dir: Path,
) -> None:
    km = kernel_manager(spark_spec(ssh_spec, cluster, launchers_dir))
    await km.start_kernel(env={**os.environ, "KERNEL_EXTRA_SPARK_OPTS": "--conf spark.kf.request=from-the-request"})
    client = await connect(km)
    try:
        info = await execute(client, "(sc.master, sc.applicationId, sc.appName, sc.uiWebUrl, "
                                     "spark.conf.get('spark.kf.request'), sql('SELECT 6*7 AS x').collect()[0].x)",
                             timeout=WITHIN)
        assert info["status"] == "ok", info
        master, app_id, app_name, ui_url, request_conf, answer = eval(info["result"])  # a tuple of literals
        assert master == cluster.master and app_name == f"kf-{km.kernel_id}"
        assert request_conf == "from-the-request" and answer == 42

        # The job runs on the worker: the master lists the application with cores granted, the driver an executor.
        count = await execute(client, "spark.range(100000, numPartitions=4).selectExpr('sum(id)').collect()[0][0]",
                              timeout=WITHIN)
        assert count["result"] == str(sum(range(100000)))
        state = await cluster.status_async()
        app = next(a for a in state["activeapps"] if a["id"] == app_id)
        assert app["cores"] > 0 and state["workers"][0]["coresused"] > 0
        executors = await asyncio.to_thread(driver_api, ui_url, f"applications/{app_id}/executors")
        workers = [e for e in executors if e["id"] != "driver"]
        assert workers and sum(e["completedTasks"] for e in workers) >= 4, executors

        # Interrupt while the job runs on the cluster: the job is cancelled, the kernel stays usable.
        busy = client.execute(LONG_JOB)
        await wait_until_async(lambda: _running_jobs(ui_url, app_id), WITHIN, "the long Spark job never ran")
        await km.interrupt_kernel()
        reply = await interrupted_reply_any(client, busy)
        assert reply["status"] == "error", reply
        await wait_until_async(lambda: _no_running_jobs(ui_url, app_id), 60, "the Spark job was not cancelled")
        again = await execute(client, "spark.range(10).count()", timeout=WITHIN)
        assert again["result"] == "10"
    finally:
        client.stop_channels()
        await km.shutdown_kernel()

    # Shutdown leaves no application behind: the master lists it as completed, none active.
    async def completed() -> bool:
        state = await cluster.status_async()
        return (not any(a["id"] == app_id for a in state["activeapps"])
                and any(a["id"] == app_id for a in state["completedapps"]))

    await wait_until_async(completed, 60, f"application {app_id} still active after the kernel's shutdown")


async def test_impersonation_proxies_the_spark_user_and_runs_the_kernel_as_that_user(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager], cluster: SparkStandalone,
    launchers_dir: Path,
) -> None:
    """impersonation_enabled with spark_submit: the launcher runs as KERNEL_USERNAME (sudo) and spark-submit gets
    --proxy-user, so the master lists the application as that user's."""
    try:
        with real_users(1) as (user,):
            km = kernel_manager(spark_spec(ssh_spec, cluster, launchers_dir, impersonation_enabled=True))
            await km.start_kernel(env={**os.environ, "KERNEL_USERNAME": user.pw_name})
            client = await connect(km)
            try:
                who = await execute(client, "import os; (os.getuid(), sc.sparkUser(), sc.applicationId)",
                                    timeout=WITHIN)
                uid, spark_user, app_id = eval(who["result"])  # a tuple of literals
                assert (uid, spark_user) == (user.pw_uid, user.pw_name), who
                state = await cluster.status_async()
                assert next(a for a in state["activeapps"] if a["id"] == app_id)["user"] == user.pw_name
            finally:
                client.stop_channels()
                await km.shutdown_kernel()
            await wait_until(lambda: not processes_of(user.pw_uid), 30, f"{user.pw_name}'s processes left")
    except UsersMissing as err:
        pytest.fail(str(err))


async def _no_running_jobs(ui_url: str, app_id: str) -> bool:
    return not await _running_jobs(ui_url, app_id)


async def wait_until_async(condition: Callable[[], Any], within: float, what: str) -> None:
    """Re-check an external status (the master's or the driver's JSON) until ``condition()`` is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} (waited {within:g}s)")
        await asyncio.sleep(0.2)


async def interrupted_reply_any(client: Any, msg_id: str) -> dict[str, Any]:
    """The execute_reply of an interrupted Spark cell: KeyboardInterrupt, or the job's cancellation raised by py4j."""
    async with asyncio.timeout(WITHIN):
        while (msg := await client.get_shell_msg())["parent_header"].get("msg_id") != msg_id:
            pass
    return dict(msg["content"])

