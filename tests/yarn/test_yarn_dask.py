"""Dask kernels on YARN, for real against yarnlite: ``jupyter yarn-spec install --dask``'s kernelspec and a
GP-written ``yarn_dask_python`` one (``bin/run.sh`` + ``DASK_YARN_EXE`` + ``DASK_OPTS``, an empty provisioner
config) are each submitted through the RM's REST API — never ``dask-yarn submit``, never run.sh — with the launch
token in the AM container's environment; the kernel (the AM, a real local process) starts, executes, is
interrupted, restarted and shut down, its apps end, and its AM processes are gone.

The kernel's namespace has ``client`` (and GP's ``cluster``): a stand-in for a ``dask.distributed.Client`` of a
``dask_yarn.YarnCluster`` started from the kernel, configured by the ``DASK_YARN__*`` values the provisioner made
from ``DASK_OPTS`` (checked here in the kernel's environment, and read by the real dask-yarn into the skein
specification it would submit). What cannot be tested here: the Dask scheduler and workers as YARN containers —
dask_yarn drives YARN through skein's Java driver, which speaks Hadoop IPC (no RM here serves it), and this
machine has no Hadoop client. So the tests check the other promise: using ``client`` without what it needs
raises a clear error naming each missing piece and how to install it (no dask at all for the ``--dask``
kernelspec; dask and dask-yarn from tools/setup-venv's ``.venv/dask-yarn`` on the GP kernel's PYTHONPATH, so only
Hadoop's ``yarn`` command is missing), and the kernel goes on working.
"""

from __future__ import annotations

import ast
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from kf_testing import connect, execute, interrupt_busy_cell, manager
from yarn_testing import dask_yarn_libs, gp_kernelspec_dir, gp_python_argv, restart_on_new_app, shut_down_ends_app

from kernelfleet.protocol.contract import LAUNCH_TOKEN
from kernelfleet.provisioners.base import LaunchError
from kernelfleet.yarnlite import Cluster, ResourceManager

PROBE = ("import os, json; json.dumps({k: v for k, v in os.environ.items() "
         "if k.startswith(('DASK_YARN__', 'KF_DASK_YARN'))})")


NO_DASK = ("dask.distributed is not installed (pip install 'dask[distributed]')",
           "dask_yarn is not installed (pip install dask-yarn", "`yarn` command is not on PATH")
NO_HADOOP = ("`yarn` command is not on PATH (skein runs `yarn classpath`",)


async def dask_lifecycle(km: AsyncKernelManager, cluster: Cluster, missing: tuple[str, ...]) -> dict[str, str]:
    """Start, look at the Dask namespace, use ``client`` (a clear error naming each of ``missing``, and only the
    pieces named there), interrupt, restart, shut down. Returns the kernel's DASK_YARN__/KF_DASK_YARN environment
    of the first launch."""
    await km.start_kernel()
    try:
        app_id = km.provisioner.application_id
        app = cluster.apps[app_id]
        assert app.state == "RUNNING" and app.app_type == "KERNELFLEET" and app.name == km.kernel_id
        assert "dask-yarn" not in app.command and "run.sh" not in app.command
        assert LAUNCH_TOKEN in app.env and app.env[LAUNCH_TOKEN] not in app.command  # the token: env only
        client = await connect(km)
        names = await execute(client, "sorted(n for n in ('client', 'cluster') if n in globals())")
        assert names["result"] == "['client', 'cluster']", names
        kinds = await execute(client, "type(client).__name__, type(cluster).__name__")
        assert kinds["result"] == "('LazyVariable', 'LazyVariable')"  # nothing started before first use
        env = json.loads(ast.literal_eval((await execute(client, PROBE))["result"]))
        used = await execute(client, "client.submit(sum, [1, 2])")
        assert used["status"] == "error" and used["ename"] == "NamespaceVariableError", used
        assert all(piece in used["evalue"] for piece in missing), used["evalue"]
        assert used["evalue"].count(" is not ") == len(missing), used["evalue"]
        assert (await execute(client, "6 * 7"))["result"] == "42"  # the kernel goes on working
        await interrupt_busy_cell(km, client)
        client = await restart_on_new_app(km, cluster, client, connect)
        again = json.loads(ast.literal_eval((await execute(client, PROBE))["result"]))
        assert again == env  # the restart's app gets the same Dask settings
        client.stop_channels()
        await shut_down_ends_app(km, cluster)
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
    assert all(a.state in ("FINISHED", "KILLED") and a.process is not None and a.process.returncode is not None
               for a in cluster.apps.values())
    return env


async def test_yarn_spec_install_dask_kernelspec_lifecycle(tmp_path: Path, rm: ResourceManager, cluster: Cluster,
                                                           launchers_dir: Path) -> None:
    """``jupyter yarn-spec install --dask``: the AM is the launcher itself, with --extra-dask-opts' settings."""
    prefix = tmp_path / "prefix"
    install = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kernelfleet.provisioners.cli.yarn", "install", "--dask", f"--prefix={prefix}",
        f"--yarn-endpoint={rm.endpoint}", f"--python-root={sys.prefix}", f"--launchers-dir={launchers_dir}",
        "--extra-dask-opts=--worker-count 2 --worker-memory '3 GiB' --client-memory 768 --client-env MODE=fast",
        stderr=asyncio.subprocess.PIPE)
    _, stderr = await install.communicate()
    assert install.returncode == 0, stderr.decode()
    km = manager(prefix / "share" / "jupyter" / "kernels", "yarn_dask_python")
    env = await dask_lifecycle(km, cluster, NO_DASK)
    assert ast.literal_eval(env["DASK_YARN__NAME"]) == km.kernel_id
    assert ast.literal_eval(env["DASK_YARN__ENVIRONMENT"]) == f"python://{sys.prefix}/bin/python"
    assert ast.literal_eval(env["DASK_YARN__WORKER__COUNT"]) == 2
    assert ast.literal_eval(env["DASK_YARN__WORKER__MEMORY"]) == "3 GiB"
    assert f"kf-kernel-{km.kernel_id}" in ast.literal_eval(env["DASK_YARN__TAGS"])  # the sweep finds its Dask app
    assert env["KF_DASK_YARN"] == "1" and env["KF_DASK_YARN_TEMPORARY_CREDENTIALS"] == "1"
    apps = list(cluster.apps.values())
    assert all(a.memory == 768 and a.env.get("MODE") == "fast" for a in apps)  # --client-memory / --client-env


def write_gp_dask_kernelspec(kernels: Path, shim: Path, python_path: Path) -> Path:
    """GP 0.5.0's yarn_dask_python as its install writes it (templates expanded), run.sh included; ``python_path``
    (where dask and dask-yarn are) as the kernel's PYTHONPATH."""
    spec_dir = gp_kernelspec_dir(kernels, "yarn_dask_python")
    (spec_dir / "scripts").mkdir()
    (spec_dir / "scripts" / "launch_ipykernel.py").write_bytes(shim.read_bytes())
    spec = {
        "language": "python",
        "display_name": "Dask Python (YARN Cluster)",
        "metadata": {"supported_encryption": ["curve"],
                     "kernel_provisioner": {"provisioner_name": "yarn-provisioner", "config": {}}},
        "env": {
            "SPARK_HOME": "/opt/spark",
            "DASK_YARN_EXE": f"{sys.prefix}/bin/dask-yarn",
            "DASK_OPTS": "--name ${KERNEL_ID:-ERROR__NO__KERNEL_ID} --environment python://"
                         f"{sys.prefix}/bin/python --temporary-security-credentials --deploy-mode remote "
                         "--worker-env TEAM=${KERNEL_TEAM}",
            "LAUNCH_OPTS": "",
            "PYTHONPATH": str(python_path),
        },
        "argv": gp_python_argv(spec_dir, "--cluster-type", "dask"),
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=2))
    return spec_dir


async def test_gp_written_dask_kernelspec_runs_unchanged(kernels_dir: Path, rm: ResourceManager, cluster: Cluster,
                                                         launchers_dir: Path, monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """GP's yarn_dask_python runs through REST; its run.sh never runs; a request value in DASK_OPTS stays one
    value (it cannot become a second option)."""
    monkeypatch.setenv("GP_YARN_ENDPOINT", rm.endpoint)
    monkeypatch.setenv("KERNEL_TEAM", "blue --queue root.admin")
    spec_dir = write_gp_dask_kernelspec(kernels_dir, launchers_dir / "python" / "launch_ipykernel.py",
                                        dask_yarn_libs())
    km = manager(kernels_dir, "yarn_dask_python")
    env = await dask_lifecycle(km, cluster, NO_HADOOP)
    assert ast.literal_eval(env["DASK_YARN__WORKER__ENV"]) == {"TEAM": "blue --queue root.admin"}
    assert "DASK_YARN__QUEUE" not in env and {a.queue for a in cluster.apps.values()} == {"default"}
    assert ast.literal_eval(env["DASK_YARN__NAME"]) == km.kernel_id
    assert all(str(spec_dir / "scripts" / "launch_ipykernel.py") in a.command for a in cluster.apps.values())
    assert not (spec_dir / "RUN_SH_WAS_EXECUTED").exists()


SPECIFICATION = """
import json
from dask_yarn.core import _make_specification
spec = _make_specification()
worker, scheduler = spec.services["dask.worker"], spec.services["dask.scheduler"]
print(json.dumps({"name": spec.name, "queue": spec.queue, "user": spec.user, "tags": sorted(spec.tags),
                  "workers": worker.instances, "worker_memory": worker.resources.memory,
                  "worker_vcores": worker.resources.vcores, "worker_env": worker.env["TEAM"],
                  "scheduler_vcores": scheduler.resources.vcores, "script": worker.script}))
"""


async def test_real_dask_yarn_reads_the_kernels_settings() -> None:
    """The DASK_YARN__* values made from DASK_OPTS are what the real dask-yarn (tools/setup-venv's copy) puts in the
    skein specification it would submit from the kernel: names, literals and nesting as dask's config reads them."""
    from kernelfleet.provisioners.yarn.dask import dask_launch

    dask_opts = ("--name ${KERNEL_ID} --environment python:///opt/py/bin/python --deploy-mode remote "
                 "--worker-count 3 --worker-memory '3 GiB' --worker-vcores 2 --worker-env TEAM=${KERNEL_TEAM} "
                 "--scheduler-vcores 2 --tags a,b --queue analytics")
    launch = dask_launch(["/opt/py/bin/python", "launcher.py"], {"KERNEL_ID": "k1", "KERNEL_TEAM": "x --queue y",
                         "DASK_OPTS": dask_opts}, gp_run_sh=False, tags=["kf-kernel-k1"], user="bob")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SPECIFICATION, env={**launch.env, "PYTHONPATH": str(dask_yarn_libs())},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(child.communicate(), 120)
    assert child.returncode == 0, err.decode()[-2000:]
    assert json.loads(out) == {"name": "k1", "queue": "analytics", "user": "bob", "tags": ["a", "b", "kf-kernel-k1"],
                               "workers": 3, "worker_memory": 3072, "worker_vcores": 2, "worker_env": "x --queue y",
                               "scheduler_vcores": 2,
                               "script": "/opt/py/bin/python -m dask_yarn.cli services worker"}


async def test_a_bad_dask_setting_fails_the_launch_by_name_before_any_application(
        kernels_dir: Path, make_kernelspec: Callable[..., str], rm: ResourceManager, cluster: Cluster,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A request value that is not what its DASK_OPTS option takes fails the launch at once, naming the kernel and
    the option (not the value's neighbours as options); nothing is submitted."""
    monkeypatch.setenv("KERNEL_WORKERS", "2 --queue root.admin")
    name = make_kernelspec("yarn_dask_bad", provisioner="yarn-provisioner", config={"yarn_endpoint": rm.endpoint},
                           env={"DASK_OPTS": "--environment python:///p/bin/python --worker-count ${KERNEL_WORKERS}"})
    km = manager(kernels_dir, name)
    with pytest.raises(LaunchError, match=r"DASK_OPTS --worker-count '2 --queue root.admin' is not a whole number") \
            as caught:
        await km.start_kernel()
    assert km.kernel_id in str(caught.value)
    assert not cluster.apps
    if km.has_kernel:
        await km.shutdown_kernel(now=True)
