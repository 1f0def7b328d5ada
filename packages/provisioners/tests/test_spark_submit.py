"""spark-submit command lines (spark_submit) and the impersonated argv (ssh.kernel_argv): words, never shell code."""

from __future__ import annotations

import pytest

from kernelfleet.provisioners.kernel_env import KernelEnvError
from kernelfleet.provisioners.request_env import Engine, check_request_env
from kernelfleet.provisioners.spark_submit import (
    SparkSubmit,
    SparkSubmitError,
    extra_spark_options,
    spark_submit_argv,
)
from kernelfleet.provisioners.ssh.impersonation import DEFAULT_COMMAND, ImpersonationError
from kernelfleet.provisioners.ssh.kernel_argv import ArgvPolicy, kernel_argv

KID = "k-1"
PY = ["/opt/py/bin/python", "/kl/python/launch_ipykernel.py", "--kernel-id", KID]
GP_OPTS = "--master yarn --deploy-mode client --name ${KERNEL_ID:-ERROR__NO__KERNEL_ID} ${KERNEL_EXTRA_SPARK_OPTS}"


def test_gp_spark_opts_are_split_and_their_expansions_replaced_without_a_shell() -> None:
    argv = spark_submit_argv(KID, PY, SparkSubmit("/opt/spark", GP_OPTS, "--RemoteProcessProxy.x 'a b'"),
                             username="alice", extra="--conf 'spark.x=1 2' --executor-memory 2g")
    assert argv == ["/opt/spark/bin/spark-submit", "--master", "yarn", "--deploy-mode", "client", "--name", KID,
                    "--conf", "spark.x=1 2", "--executor-memory", "2g",
                    "--conf", "spark.pyspark.driver.python=/opt/py/bin/python", "/kl/python/launch_ipykernel.py",
                    "--RemoteProcessProxy.x", "a b", "--kernel-id", KID]


def test_extras_go_after_spark_opts_without_a_placeholder_and_the_app_is_named_after_the_kernel() -> None:
    argv = spark_submit_argv(KID, ["Rscript", "/kl/R/scripts/launch_IRkernel.R"],
                             SparkSubmit("/s", "--master spark://m:7077 --conf spark.home=/home/${KERNEL_USERNAME}"),
                             username="bob", extra="--num-executors 2", proxy_user=True)
    assert argv == ["/s/bin/spark-submit", "--master", "spark://m:7077", "--conf", "spark.home=/home/bob",
                    "--num-executors", "2", "--name", KID, "--proxy-user", "bob",
                    "--conf", "spark.r.driver.command=Rscript", "/kl/R/scripts/launch_IRkernel.R"]


@pytest.mark.parametrize("opts", ["--conf x=$HOME", "--name `id`", "--conf a=${KERNEL_EXTRA_SPARK_OPTS}x",
                                  "--conf 'unbalanced"])
def test_operator_options_needing_a_shell_are_refused_with_the_setting(opts: str) -> None:
    with pytest.raises(SparkSubmitError, match=f"Kernel {KID}: SPARK_OPTS"):
        spark_submit_argv(KID, PY, SparkSubmit("/s", opts), username="a")


@pytest.mark.parametrize("extra", ["--master local", "--deploy-mode=cluster", "--proxy-user root", "--keytab /k",
                                   "--conf spark.master=local", "--conf=spark.kerberos.principal=x",
                                   "-c spark.pyspark.driver.python=/bin/sh", "--conf spark.r.driver.command=sh",
                                   "--principal p", "--conf 'x"])
def test_request_options_that_choose_cluster_identity_or_program_are_refused(extra: str) -> None:
    with pytest.raises(KernelEnvError, match=f"Kernel {KID}: KERNEL_EXTRA_SPARK_OPTS"):
        extra_spark_options(KID, "KERNEL_EXTRA_SPARK_OPTS", extra)
    with pytest.raises(KernelEnvError):
        check_request_env(KID, {"KERNEL_EXTRA_SPARK_OPTS": extra}, engine=Engine.SSH, operator_env={}, server_env={})


def test_request_words_are_data_even_when_they_look_like_shell() -> None:
    assert extra_spark_options(KID, "X", "--conf 'spark.a=x; rm -rf /' --name \"a|b\"") == [
        "--conf", "spark.a=x; rm -rf /", "--name", "a|b"]


@pytest.mark.parametrize("argv", [["python", "-m", "kernelfleet.launcher"], ["python"], ["/bin/run.sh", "x"]])
def test_the_launcher_must_be_a_script_file(argv: list[str]) -> None:
    with pytest.raises(SparkSubmitError, match="INTERPRETER SCRIPT"):
        spark_submit_argv(KID, argv, SparkSubmit("/s"), username="a")


def test_spark_home_must_be_absolute() -> None:
    with pytest.raises(SparkSubmitError, match="SPARK_HOME"):
        spark_submit_argv(KID, PY, SparkSubmit(""), username="a")


def test_impersonation_prefixes_the_checked_user_and_proxies_spark() -> None:
    policy = ArgvPolicy(spark_submit=True, impersonation=True, impersonation_command=DEFAULT_COMMAND,
                        unauthorized_users=frozenset({"root"}))
    argv = kernel_argv(KID, PY, policy, operator_env={"SPARK_HOME": "/s", "SPARK_OPTS": "--master m"},
                       request_env={"KERNEL_USERNAME": "alice", "SPARK_OPTS": "--master request"})
    assert argv[:7] == ["sudo", "-n", "-H", "-E", "-u", "alice", "--"]
    assert argv[7:12] == ["/s/bin/spark-submit", "--master", "m", "--name", KID]
    assert argv[12:14] == ["--proxy-user", "alice"]


@pytest.mark.parametrize(("user", "policy", "match"), [
    ("root", ArgvPolicy(impersonation=True, impersonation_command=DEFAULT_COMMAND,
                        unauthorized_users=frozenset({"root"})), "not allowed"),
    ("eve", ArgvPolicy(impersonation=True, impersonation_command=DEFAULT_COMMAND,
                       authorized_users=frozenset({"alice"})), "authorized users"),
    ("-u", ArgvPolicy(impersonation=True, impersonation_command=DEFAULT_COMMAND), "valid user name"),
    ("alice", ArgvPolicy(impersonation=True, impersonation_command=("sudo", "-u", "nobody")), "no {user}"),
    ("alice", ArgvPolicy(impersonation=True), "needs impersonation_command"),
])
def test_impersonation_refusals_name_the_kernel(user: str, policy: ArgvPolicy, match: str) -> None:
    with pytest.raises(PermissionError, match=match) as err:
        kernel_argv(KID, PY, policy, operator_env={}, request_env={"KERNEL_USERNAME": user})
    assert str(err.value).startswith(f"Kernel {KID}: ")
    assert isinstance(err.value, ImpersonationError) or "user" in str(err.value)


def test_without_spark_or_impersonation_the_argv_is_unchanged() -> None:
    assert kernel_argv(KID, PY, ArgvPolicy(), operator_env={}, request_env={"KERNEL_USERNAME": "a"}) == PY
