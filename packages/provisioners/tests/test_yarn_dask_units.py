"""The pure builders of Dask kernels on YARN (``yarn/dask.py``): GP's DASK_OPTS read as settings, GP's Dask
``run.sh`` read as an AM command, and hostile values refused by the option's name."""

from __future__ import annotations

import ast

import pytest

from kernelfleet.provisioners.yarn.dask import (
    DaskOptions,
    dask_env,
    dask_launch,
    dask_opts,
    dask_python,
    gp_dask_argv,
    is_dask_kernelspec,
    memory_mb,
)
from kernelfleet.provisioners.yarn.submission import gp_spark_submit_argv, with_templates

GP_DASK_OPTS = ("--name ${KERNEL_ID:-ERROR__NO__KERNEL_ID} --environment python:///opt/conda/bin/python "
                "--temporary-security-credentials --deploy-mode remote")
RUN_SH_ARGV = ["/k/yarn_dask_python/bin/run.sh", "--kernel-id", "k1", "--cluster-type", "dask"]


def test_gp_dask_opts_become_dask_yarn_configuration() -> None:
    env = {"KERNEL_ID": "k1", "DASK_OPTS": GP_DASK_OPTS + " --worker-count 4 --worker-vcores=2 --worker-memory "
           "'4 GiB' --worker-env A=1 --worker-env B=two --scheduler-memory 1GiB --tags x,y --queue analytics "
           "--client-memory '1.5 GiB' --client-vcores 2 --client-env MODE=fast"}
    launch = dask_launch(RUN_SH_ARGV, env, gp_run_sh=True, tags=["kf-kernel-k1"], user="bob")
    literals = {k: ast.literal_eval(v) for k, v in launch.env.items() if k.startswith("DASK_YARN__")}
    assert literals == {
        "DASK_YARN__NAME": "k1", "DASK_YARN__ENVIRONMENT": "python:///opt/conda/bin/python",
        "DASK_YARN__DEPLOY_MODE": "remote", "DASK_YARN__WORKER__COUNT": 4, "DASK_YARN__WORKER__VCORES": 2,
        "DASK_YARN__WORKER__MEMORY": "4 GiB", "DASK_YARN__WORKER__ENV": {"A": "1", "B": "two"},
        "DASK_YARN__SCHEDULER__MEMORY": "1GiB", "DASK_YARN__TAGS": ["kf-kernel-k1", "x", "y"],
        "DASK_YARN__QUEUE": "analytics", "DASK_YARN__USER": "bob",
    }
    assert launch.env["KF_DASK_YARN"] == "1" and launch.env["KF_DASK_YARN_TEMPORARY_CREDENTIALS"] == "1"
    assert launch.env["MODE"] == "fast"  # --client-env: the AM's environment, never a command line
    assert (launch.queue, launch.memory_mb, launch.vcores) == ("analytics", 1536, 2)
    assert launch.argv == ["/opt/conda/bin/python", "/k/yarn_dask_python/scripts/launch_ipykernel.py",
                           "--kernel-id", "k1", "--cluster-type", "dask"]


def test_a_request_value_stays_one_value() -> None:
    """A request variable expanded inside DASK_OPTS is one word: it cannot add an option, and as a Python literal
    it reaches dask as the same string. The template is the kernelspec's own, not the launch env's DASK_OPTS
    (jupyter_client substituted ${NAME} there already, request values included)."""
    spec_env = {"DASK_OPTS": "--name team-${KERNEL_TEAM} --environment python:///p/bin/python"}
    env = {"KERNEL_ID": "k1", "KERNEL_TEAM": "x --queue root.admin ']; import os",
           "DASK_OPTS": "--name team-x --queue root.admin ']; import os --environment python:///p/bin/python"}
    launch = dask_launch(["/p/bin/python", "launcher.py"], with_templates(env, spec_env), gp_run_sh=False, tags=[],
                         user=None)
    assert ast.literal_eval(launch.env["DASK_YARN__NAME"]) == "team-x --queue root.admin ']; import os"
    assert launch.queue is None and "DASK_YARN__QUEUE" not in launch.env
    assert launch.argv == ["/p/bin/python", "launcher.py"]


@pytest.mark.parametrize(("words", "message"), [
    (["--client-env", "NOEQUALS"], "--client-env 'NOEQUALS': expected NAME=VALUE"),
    (["--worker-env", "1BAD=x"], "--worker-env '1BAD': expected NAME=VALUE"),
    (["--client-env", "A=b\nc"], "--client-env: the value contains a newline"),
    (["--name", "a\x00b"], "--name: the value contains a newline or NUL"),
    (["--worker-count", "2; rm"], "--worker-count '2; rm' is not a whole number"),
    (["--client-memory", "lots"], "--client-memory 'lots' is not an amount of memory"),
    (["--deploy-mode", "cluster"], "--deploy-mode 'cluster' is not remote or local"),
    (["--conf", "x"], "--conf is not an option of dask-yarn submit"),
    (["script.py"], "a positional word is not an option of dask-yarn submit"),
    (["--queue"], "--queue needs a value"),
])
def test_hostile_or_wrong_values_are_refused_by_name(words: list[str], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        dask_opts(words)
    assert message in str(caught.value)


def test_memory_units_round_up_to_mib() -> None:
    assert [memory_mb("--m", t) for t in ("2 GiB", "4096 MiB", "2GB", "512", "1.5 GiB", "1 KiB")] == \
        [2048, 4096, 2048, 512, 1536, 1]


def test_dask_python_follows_the_environment_then_dask_yarn_exe() -> None:
    assert dask_python({"DASK_OPTS": "--environment venv:///srv/env"}) == "/srv/env/bin/python"
    gp = {"DASK_OPTS": "--environment /a/env.tar.gz", "DASK_YARN_EXE": "${ROOT}/bin/dask-yarn", "ROOT": "/o"}
    assert dask_python(gp) == "/o/bin/python"
    with pytest.raises(ValueError, match="interpreter is unknown"):
        dask_python({"DASK_OPTS": "--environment /a/env.tar.gz"})
    assert gp_dask_argv(RUN_SH_ARGV, {"DASK_OPTS": GP_DASK_OPTS, "LAUNCH_OPTS": "--x 'a b'"})[2:4] == ["--x", "a b"]


def test_only_the_kernelspec_makes_a_dask_kernel() -> None:
    assert is_dask_kernelspec({"DASK_OPTS": ""}) and not is_dask_kernelspec({"SPARK_OPTS": "--master yarn"})
    assert dask_env(DaskOptions()) == {"KF_DASK_YARN": "1"}


def test_gp_spark_opts_are_read_from_the_kernelspec_not_jupyter_clients_substituted_copy() -> None:
    """jupyter_client substitutes ${KERNEL_USERNAME} into the launch env's SPARK_OPTS before the provisioner sees it;
    read from there, a user name with spaces would add spark-submit options (--proxy-user!). The kernelspec's
    template keeps it one word."""
    spec_env = {"SPARK_HOME": "/s",
                "SPARK_OPTS": "--name k1 --conf spark.yarn.appMasterEnv.HOME=/home/${KERNEL_USERNAME}"}
    user = "bob --proxy-user admin"
    env = {**spec_env, "KERNEL_USERNAME": user,
           "SPARK_OPTS": f"--name k1 --conf spark.yarn.appMasterEnv.HOME=/home/{user}"}  # as jupyter_client leaves it
    argv = gp_spark_submit_argv(["/k/bin/run.sh"], with_templates(env, spec_env), None)
    assert "--proxy-user" not in argv and f"spark.yarn.appMasterEnv.HOME=/home/{user}" in argv
