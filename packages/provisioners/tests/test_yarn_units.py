"""The YARN engine's pure parts: submission builders, GP's run.sh meaning as an argv (no shell), app matching,
and the error texts made from YARN's reports. No cluster needed."""

from __future__ import annotations

import shlex

import pytest

from kernelfleet.provisioners.sweep.model import YarnTarget
from kernelfleet.provisioners.sweep.yarn_apps import app_orphan
from kernelfleet.provisioners.yarn.client import normalise_endpoint, remote_error
from kernelfleet.provisioners.yarn.submission import (
    am_host,
    app_tags,
    describe_end,
    describe_queue_wait,
    expand_options,
    gp_spark_submit_argv,
    pick_app,
    properties_text,
    submission_context,
    with_spark_options,
)

GP_SPARK_OPTS = ("--master yarn --deploy-mode cluster --name ${KERNEL_ID:-ERROR__NO__KERNEL_ID} "
                 "--conf spark.yarn.appMasterEnv.PYTHONUSERBASE=/home/${KERNEL_USERNAME}/.local "
                 "--conf spark.yarn.appMasterEnv.PATH=/opt/conda/bin:$PATH ${KERNEL_EXTRA_SPARK_OPTS}")


def test_request_values_never_become_options_or_commands() -> None:
    env = {"KERNEL_ID": "k1", "KERNEL_USERNAME": "bob --proxy-user root $(touch /tmp/x)", "PATH": "/usr/bin"}
    words = expand_options(GP_SPARK_OPTS, env)
    assert words == ["--master", "yarn", "--deploy-mode", "cluster", "--name", "k1", "--conf",
                     "spark.yarn.appMasterEnv.PYTHONUSERBASE=/home/bob --proxy-user root $(touch /tmp/x)/.local",
                     "--conf", "spark.yarn.appMasterEnv.PATH=/opt/conda/bin:/usr/bin"]
    assert expand_options("--name ${KERNEL_ID:-ERROR__NO__KERNEL_ID}", {}) == ["--name", "ERROR__NO__KERNEL_ID"]


def test_the_declared_options_word_is_split_without_a_shell() -> None:
    env = {"KERNEL_EXTRA_SPARK_OPTS": "--conf 'spark.a=b c' $(reboot)"}
    assert expand_options("${KERNEL_EXTRA_SPARK_OPTS}", env) == ["--conf", "spark.a=b c", "$(reboot)"]


def test_gp_run_sh_becomes_spark_submit_argv() -> None:
    argv = ["/usr/local/share/jupyter/kernels/yarn_spark_python/bin/run.sh", "--kernel-id", "k1"]
    env = {"SPARK_HOME": "/opt/spark", "SPARK_OPTS": "--master yarn --name ${KERNEL_ID}", "KERNEL_ID": "k1",
           "LAUNCH_OPTS": "--cluster-type spark", "KERNEL_LANGUAGE": "python"}
    assert gp_spark_submit_argv(argv, env, proxy_user="alice") == [
        "/opt/spark/bin/spark-submit", "--master", "yarn", "--name", "k1", "--proxy-user", "alice",
        "/usr/local/share/jupyter/kernels/yarn_spark_python/scripts/launch_ipykernel.py", "--cluster-type", "spark",
        "--kernel-id", "k1"]
    with pytest.raises(ValueError, match="SPARK_HOME"):
        gp_spark_submit_argv(argv, {}, None)



def test_gp_scala_and_r_run_sh_become_spark_submit_argv() -> None:
    """GP's yarn_spark_scala run.sh: __TOREE_SPARK_OPTS__ when SPARK_OPTS is empty, --jars the assembly, --class and
    the launcher jar from lib/ (ours when it is there, else GP's), then __TOREE_OPTS__; yarn_spark_r: the R script."""
    kernel = "/k/yarn_spark_scala"
    env = {"SPARK_HOME": "/opt/spark", "KERNEL_LANGUAGE": "scala", "KERNEL_ID": "k1",
           "__TOREE_SPARK_OPTS__": "--master yarn --name ${KERNEL_ID}", "__TOREE_OPTS__": "--alternate-sigint USR2"}
    lib = ["toree-assembly-0.5.0-incubating.jar", "kernelfleet-toree-launcher.jar", "toree-launcher-SNAPSHOT.jar"]
    assert gp_spark_submit_argv([f"{kernel}/bin/run.sh", "--kernel-id", "k1"], env, None, lib) == [
        "/opt/spark/bin/spark-submit", "--master", "yarn", "--name", "k1",
        "--driver-java-options", "--add-opens=java.base/java.util.jar=ALL-UNNAMED",
        "--jars", f"{kernel}/lib/toree-assembly-0.5.0-incubating.jar", "--class", "kernelfleet.toree.ToreeLauncher",
        f"{kernel}/lib/kernelfleet-toree-launcher.jar", "--alternate-sigint", "USR2", "--kernel-id", "k1"]
    own_options = {**env, "SPARK_OPTS": "--master yarn --driver-java-options -Dx=1"}
    gp_only = gp_spark_submit_argv([f"{kernel}/bin/run.sh"], own_options, None, lib[::2])
    assert gp_only[1:9] == ["--master", "yarn", "--driver-java-options", "-Dx=1", "--jars", f"{kernel}/lib/{lib[0]}",
                            "--class", "launcher.ToreeLauncher"]
    with pytest.raises(ValueError, match="toree-assembly"):
        gp_spark_submit_argv([f"{kernel}/bin/run.sh"], env, None, ["kernelfleet-toree-launcher.jar"])
    r_argv = gp_spark_submit_argv(["/k/yarn_spark_r/bin/run.sh"], {"SPARK_HOME": "/s", "KERNEL_LANGUAGE": "r"}, None)
    assert r_argv == ["/s/bin/spark-submit", "/k/yarn_spark_r/scripts/launch_IRkernel.R"]


def test_spark_options_go_right_after_spark_submit_only() -> None:
    assert with_spark_options(["/s/bin/spark-submit", "--master", "yarn", "x.py"], "/p", "bob") == [
        "/s/bin/spark-submit", "--properties-file", "/p", "--proxy-user", "bob", "--master", "yarn", "x.py"]
    assert with_spark_options(["dask-yarn", "submit"], "/p", "bob") == ["dask-yarn", "submit"]


def test_properties_carry_the_environment_escaped() -> None:
    text = properties_text({"LAUNCH_TOKEN": "t=k", "RESPONSE_ADDRESS": "10.0.0.1:8877"})
    assert text == ("spark.yarn.appMasterEnv.LAUNCH_TOKEN=t\\=k\n"
                    "spark.yarn.appMasterEnv.RESPONSE_ADDRESS=10.0.0.1\\:8877\n")
    tagged = properties_text({"A": "1"}, app_tags("K1", "Srv"))
    assert tagged == "spark.yarn.appMasterEnv.A=1\nspark.yarn.tags=kf-kernel-k1,kf-server-srv\n"


def test_submission_context_quotes_each_argv_word() -> None:
    context = submission_context(app_id="application_1_0001", name="k1", queue="q", argv=["/py", "-c", "print(1); x"],
                                 env={"B": "2", "A": "1"}, tags=app_tags("K1", "srv"), memory_mb=512, vcores=2)
    assert shlex.split(context["am-container-spec"]["commands"]["command"]) == ["/py", "-c", "print(1); x"]
    assert context["am-container-spec"]["environment"]["entry"] == [{"key": "A", "value": "1"},
                                                                    {"key": "B", "value": "2"}]
    assert context["application-tags"] == {"tag": ["kf-kernel-k1", "kf-server-srv"]}
    assert (context["resource"], context["max-app-attempts"]) == ({"memory": 512, "vCores": 2}, 1)


def test_pick_app_takes_the_newest_of_this_launch() -> None:
    apps = [{"id": "a1", "name": "k1", "startedTime": 50}, {"id": "a2", "name": "k1", "startedTime": 150},
            {"id": "a3", "name": "other", "startedTime": 200},
            {"id": "a4", "name": "x", "applicationTags": "kf-kernel-k1", "startedTime": 120}]
    assert pick_app(apps, "k1", 100) == apps[1]
    assert pick_app(apps, "k9", 0) is None


def test_reports_become_errors_in_yarns_words() -> None:
    app = {"id": "application_1_0002", "state": "FAILED", "finalStatus": "FAILED", "queue": "default",
           "diagnostics": "AM exited", "amHostHttpAddress": "node7:8042"}
    assert describe_end(app) == ("YARN application application_1_0002 is FAILED (final status FAILED, queue "
                                 "default): AM exited")
    assert "stayed ACCEPTED in queue 'default' for more than 2s (queue_timeout): AM exited" in \
        describe_queue_wait(app, 2)
    assert am_host(app) == "node7" and am_host({}) == ""


def test_client_endpoints_and_remote_exceptions() -> None:
    assert normalise_endpoint("http://rm1:8088/") == "http://rm1:8088/ws/v1/cluster"
    assert normalise_endpoint("https://rm1:8090/ws/v1/cluster/") == "https://rm1:8090/ws/v1/cluster"
    with pytest.raises(ValueError):
        normalise_endpoint("rm1:8088")
    error = remote_error(404, '{"RemoteException": {"exception": "NotFoundException", "message": "app x not found",'
                              ' "javaClassName": "org.apache.hadoop.yarn.webapp.NotFoundException"}}')
    assert (error.status, error.exception, error.message) == (404, "NotFoundException", "app x not found")
    assert remote_error(500, "<html>oops</html>").message == "HTTP 500: <html>oops</html>"


def test_sweep_reads_a_listed_app_as_yarn_reports_it() -> None:
    """The kernel id is the app's name (its case kept), the lower-cased tag when the name is something else; an app
    of another server, an ended one or one without a kernel id is no orphan."""
    target = YarnTarget(("http://rm1:8088/ws/v1/cluster",))
    app = {"id": "application_1_0001", "name": "Kernel-1", "state": "RUNNING", "startedTime": 1000,
           "applicationTags": "kf-kernel-kernel-1,kf-server-srv"}
    orphan = app_orphan(app, "Srv", target, now_ms=6000)
    assert orphan is not None and (orphan.kernel_id, orphan.object_id, orphan.age) == ("Kernel-1", app["id"], 5.0)
    assert orphan.yarn == target and orphan.location == target.endpoints[0]
    assert app_orphan({**app, "name": "spark-app"}, "srv", target, 6000).kernel_id == "kernel-1"  # type: ignore[union-attr]
    assert app_orphan(app, "other", target, 6000) is None
    assert app_orphan({**app, "state": "KILLED"}, "srv", target, 6000) is None
    assert app_orphan({**app, "name": "", "applicationTags": "kf-server-srv"}, "srv", target, 6000) is None
