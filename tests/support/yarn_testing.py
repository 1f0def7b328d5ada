"""Steps every YARN kernel test takes, whatever the language: a restart lands on a new application while the old
one ends, and a shutdown ends the last application with its AM process gone; and the directory of a kernelspec as
Gateway Provisioners lays it out, whose ``bin/run.sh`` must never run."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous.client import AsyncKernelClient

from kernelfleet.yarnlite import FINAL, Cluster

# GP 0.5.0's run.sh, word for word in what matters: it would `eval` SPARK_OPTS. It must never run: it leaves
# RUN_SH_WAS_EXECUTED in the kernelspec directory if it does.
GP_RUN_SH = """#!/usr/bin/env bash
touch "$(dirname "$0")/../RUN_SH_WAS_EXECUTED"
eval exec "${SPARK_HOME}/bin/spark-submit" "${SPARK_OPTS}" "${IMPERSONATION_OPTS}" \\
    "${PROG_HOME}/scripts/launch_ipykernel.py" "${LAUNCH_OPTS}" "$@"
"""


def python_spark_submit_argv(spark_home: Path, launchers_dir: Path) -> list[str]:
    """A kernelspec argv as ``jupyter yarn-spec install`` writes it for Python: spark-submit (here the TEST-ONLY
    stand-in) in cluster mode of the launcher script, this interpreter as the AM's Python."""
    from kernelfleet.provisioners.container_argv import launcher_args

    return [str(spark_home / "bin" / "spark-submit"), "--master", "yarn", "--deploy-mode", "cluster", "--name",
            "{kernel_id}", "--conf", f"spark.yarn.appMasterEnv.PYSPARK_PYTHON={sys.executable}",
            str(launchers_dir / "python" / "launch_ipykernel.py"), *launcher_args(spark_init_mode="none")]


def gp_kernelspec_dir(kernels: Path, name: str) -> Path:
    """``kernels/name`` with GP's ``bin/run.sh``; the caller adds ``scripts/`` or ``lib/`` and kernel.json."""
    spec_dir = kernels / name
    (spec_dir / "bin").mkdir(parents=True)
    (spec_dir / "bin" / "run.sh").write_text(GP_RUN_SH)
    (spec_dir / "bin" / "run.sh").chmod(0o755)
    return spec_dir


def dask_yarn_libs() -> Path:
    """Where tools/setup-venv installs dask, distributed and dask-yarn (pip --target, beside the venv: the launcher's
    own tests need an environment without dask); a failure that says so when they are missing."""
    import pytest

    libs = Path(sys.prefix) / "dask-yarn"
    if not (libs / "dask_yarn").is_dir():
        pytest.fail(f"{libs} has no dask_yarn: run tools/setup-venv (it installs requirements-dask-yarn.txt there)")
    return libs


def gp_python_argv(spec_dir: Path, *options: str) -> list[str]:
    """A GP-written Python YARN kernelspec's argv: its ``bin/run.sh`` with GP's launcher arguments, ``options``
    (``--spark-context-initialization-mode none``, ``--cluster-type dask``) before the kernel class."""
    return [str(spec_dir / "bin" / "run.sh"), "--kernel-id", "{kernel_id}", "--port-range", "{port_range}",
            "--response-address", "{response_address}", "--public-key", "{public_key}",
            "--transport-encryption", "{transport_encryption}", *options,
            "--kernel-class-name", "ipykernel.ipkernel.IPythonKernel"]


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


async def gp_kernelspec_runs_unchanged(kernels: Path, name: str, cluster: Cluster,
                                       reconnect: Callable[[AsyncKernelManager], Awaitable[AsyncKernelClient]],
                                       code: str, expected: str, launcher: str, cell_timeout: float) -> None:
    """Start the GP-written kernelspec ``name`` (made with ``gp_kernelspec_dir``), run ``code`` (its value must be
    ``expected``) and shut it down: one SPARK application named after the kernel whose AM ran ``launcher``, and
    GP's run.sh never ran."""
    from kf_testing import manager
    from rs_testing import execute

    km = manager(kernels, name)
    await km.start_kernel()
    try:
        client = await reconnect(km)
        assert (await execute(client, code, cell_timeout))["result"] == expected
        client.stop_channels()
        await shut_down_ends_app(km, cluster)
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
    (app,) = cluster.apps.values()
    assert app.name == km.kernel_id and app.app_type == "SPARK" and launcher in app.command, app
    assert not (kernels / name / "RUN_SH_WAS_EXECUTED").exists()
