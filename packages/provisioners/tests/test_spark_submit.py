"""The pure half of Spark-on-Kubernetes cluster mode (``k8s.spark_submit``): which kernelspecs run spark-submit,
the command line a launch runs (the provisioner's options win, no shell, no token), the driver pod template."""

from __future__ import annotations

import pytest

from kernelfleet.provisioners.k8s.spark_submit import (
    SparkSubmission,
    driver_template,
    is_spark_submit,
    primary_resource_index,
    spark_opts_words,
    submit_argv,
)
from kernelfleet.provisioners.kernel_env import KernelEnvError
from kernelfleet.provisioners.spark_submit import SparkSubmitError

APP = "local:///usr/local/bin/kernel-launchers/python/launch_ipykernel.py"


def submission(argv: list[str], **extra: object) -> SparkSubmission:
    values: dict[str, object] = dict(
        argv=tuple(argv), master="k8s://https://10.0.0.1:6443", namespace="ns", pod_name="alice-k1",
        service_account="spark", image="acme/kernel:1", executor_image="acme/exec:1",
        driver_labels={"kernel_id": "k1"}, executor_labels={"kernel_id": "k1"}, template_path="/tmp/t.json",
        app_name="alice-k1")
    values.update(extra)
    return SparkSubmission(**values)  # type: ignore[arg-type]


def test_is_spark_submit() -> None:
    assert is_spark_submit(["/opt/spark/bin/spark-submit", APP])
    assert is_spark_submit(["spark-submit"])
    assert not is_spark_submit(["python", "-m", "kernelfleet.provisioners.container_argv"])
    assert not is_spark_submit([])


def test_primary_resource_skips_options_and_their_values() -> None:
    argv = ["spark-submit", "--conf", "a=b", "--verbose", "--name=x", "--deploy-mode", "cluster", APP, "--kernel-id",
            "k1"]
    assert primary_resource_index(argv) == 7
    with pytest.raises(ValueError, match="no application file"):
        primary_resource_index(["spark-submit", "--conf", "a=b"])


def test_provisioner_options_come_after_the_kernelspec_and_before_the_application() -> None:
    spec = ["/opt/spark/bin/spark-submit", "--deploy-mode", "cluster", "--conf",
            "spark.kubernetes.namespace=elsewhere", APP, "--kernel-id", "k1"]
    argv = submit_argv(submission(spec, spark_opts=("--conf", "spark.executor.instances=1")))
    at = argv.index(APP)
    assert argv[at:] == [APP, "--kernel-id", "k1"]
    assert argv[:5] == spec[:5]
    confs = [argv[i + 1] for i in range(at) if argv[i] == "--conf"]
    # the later --conf wins in spark-submit: ours come last
    assert confs.index("spark.kubernetes.namespace=ns") > confs.index("spark.kubernetes.namespace=elsewhere")
    assert "spark.executor.instances=1" in confs
    assert "spark.kubernetes.executor.container.image=acme/exec:1" in confs
    assert "spark.kubernetes.driver.container.image=acme/kernel:1" in confs
    assert "spark.kubernetes.driver.pod.name=alice-k1" in confs
    assert "spark.kubernetes.driver.podTemplateFile=/tmp/t.json" in confs
    assert "spark.kubernetes.driver.label.kernel_id=k1" in confs
    assert "spark.kubernetes.executor.label.kernel_id=k1" in confs
    assert argv[argv.index("--master") + 1] == "k8s://https://10.0.0.1:6443"


def test_executor_image_defaults_to_the_kernel_image_and_client_mode_is_refused() -> None:
    argv = submit_argv(submission(["spark-submit", APP], executor_image=""))
    assert "spark.kubernetes.executor.container.image=acme/kernel:1" in argv
    assert argv[argv.index("--deploy-mode") + 1] == "cluster"
    with pytest.raises(ValueError, match="cluster mode"):
        submit_argv(submission(["spark-submit", "--deploy-mode", "client", APP]))


def test_proxy_user_is_the_requesting_user_before_the_application() -> None:
    """impersonation_enabled: ``--proxy-user`` with the checked user, one argv word; a kernelspec's own is refused."""
    argv = submit_argv(submission(["spark-submit", APP, "--kernel-id", "k1"], proxy_user="alice"))
    at = argv.index("--proxy-user")
    assert argv[at + 1] == "alice" and at < argv.index(APP)
    assert "--proxy-user" not in submit_argv(submission(["spark-submit", APP]))
    with pytest.raises(ValueError, match="names --proxy-user"):
        submit_argv(submission(["spark-submit", "--proxy-user", "bob", APP], proxy_user="alice"))


def test_spark_opts_are_split_without_a_shell() -> None:
    assert spark_opts_words("k1", "--conf spark.x=${HOME} --conf 'a=b c'", {"HOME": "/home/j"}, {}) == (
        "--conf", "spark.x=/home/j", "--conf", "a=b c")
    with pytest.raises(SparkSubmitError, match=r"needs a shell to expand"):
        spark_opts_words("k1", "--conf a=b $(rm -rf /)", {}, {})


def test_gp_kubernetes_spark_opts_expand_the_kernels_names_and_the_requests_extra_options() -> None:
    """GP's k8s_python_spark SPARK_OPTS, unchanged: the kernel's names from this launch, the API server's address from
    the server's environment, the request's KERNEL_EXTRA_SPARK_OPTS checked and put where the kernelspec says."""
    gp = ("--master k8s://https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT} --deploy-mode cluster "
          "--name ${KERNEL_USERNAME}-${KERNEL_ID} --conf spark.kubernetes.namespace=${KERNEL_NAMESPACE} "
          "${KERNEL_EXTRA_SPARK_OPTS}")
    words = spark_opts_words(
        "k1", gp, {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
        {"KERNEL_ID": "k1", "KERNEL_USERNAME": "alice", "KERNEL_NAMESPACE": "ns"},
        extra="--conf spark.executor.instances=2")
    assert words == ("--master", "k8s://https://10.0.0.1:443", "--deploy-mode", "cluster", "--name", "alice-k1",
                     "--conf", "spark.kubernetes.namespace=ns", "--conf", "spark.executor.instances=2")
    with pytest.raises(KernelEnvError, match="KERNEL_EXTRA_SPARK_OPTS may not give --master"):
        spark_opts_words("k1", gp, {}, {"KERNEL_ID": "k1", "KERNEL_USERNAME": "a", "KERNEL_NAMESPACE": "ns"},
                         extra="--master local")


def test_driver_template_keeps_the_token_reference_and_drops_server_values() -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"kernel_id": "k1"}},
                "spec": {"restartPolicy": "Never", "containers": [{
                    "name": "kernel", "image": "i", "command": ["x"], "args": ["y"],
                    "env": [{"name": "KERNEL_ID", "value": "k1"}, {"name": "SPARK_HOME", "value": "/srv/spark"},
                            {"name": "SPARK_OPTS", "value": "--conf a=b"},
                            {"name": "LAUNCH_TOKEN", "valueFrom": {"secretKeyRef": {"name": "p-launch",
                                                                                    "key": "launch-token"}}}]}]}}
    template = driver_template(manifest)
    (container,) = template["spec"]["containers"]
    assert "command" not in container and "args" not in container and "restartPolicy" not in template["spec"]
    assert [e["name"] for e in container["env"]] == ["KERNEL_ID", "LAUNCH_TOKEN"]
    assert manifest["spec"]["containers"][0]["command"] == ["x"]  # the input is not changed
