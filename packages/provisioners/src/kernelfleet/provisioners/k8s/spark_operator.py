"""``spark-operator-provisioner``: the kernel is the driver of a Spark operator ``SparkApplication``
(sparkoperator.k8s.io/v1beta2).

The application is built from validated values only: images, ids, service account, labels and the kernel's
environment (the launch variables travel in ``spec.driver.env``, never as arguments). The launch token is in no
field of the application, which everyone allowed to get SparkApplications can read: the driver's ``LAUNCH_TOKEN``
is a ``valueFrom.secretKeyRef`` to the launch's own Secret, as a kernel pod's is, and executors do not get it
(only the driver reports). ``SUBMISSION_FAILED`` and ``FAILED`` fail the launch with the operator's
``errorMessage``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from traitlets import Dict, Integer, List, Unicode, default

from kernelfleet.protocol.contract import LAUNCH_TOKEN
from kernelfleet.provisioners.envconfig import env_value
from kernelfleet.provisioners.k8s.custom_resource import CustomResourceProvisioner
from kernelfleet.provisioners.k8s.names import check_dns_subdomain
from kernelfleet.provisioners.k8s.pod import PodSpecError, env_entries
from kernelfleet.provisioners.request_env import Engine

LAUNCHER_FILE = "local:///usr/local/bin/kernel-launchers/python/launch_ipykernel.py"
JVM_MEMORY = re.compile(r"[1-9][0-9]{0,6}[kmgtKMGT]?")


def jvm_memory(kernel_id: str, name: str, value: str) -> str:
    """Spark's memory spelling ("1g", "512m"), checked like any other value that reaches a manifest."""
    if not JVM_MEMORY.fullmatch(value):
        raise PodSpecError(f"Kernel {kernel_id}: {name}={value[:40]!r} is not a Spark memory amount (e.g. 1g, 512m)")
    return value


class SparkOperatorProvisioner(CustomResourceProvisioner):
    """``spark-operator-provisioner``: the kernel as the driver of a Spark operator ``SparkApplication``.
    Configured per kernelspec or as ``c.SparkOperatorProvisioner.*``."""

    request_engine: ClassVar[Engine | None] = Engine.SPARK_OPERATOR

    group: ClassVar[str] = "sparkoperator.k8s.io"
    version: ClassVar[str] = "v1beta2"
    plural: ClassVar[str] = "sparkapplications"
    kind: ClassVar[str] = "SparkApplication"
    failed_states: ClassVar[frozenset[str]] = frozenset({"FAILED", "SUBMISSION_FAILED", "FAILING"})
    ended_states: ClassVar[frozenset[str]] = frozenset({"FAILED", "SUBMISSION_FAILED", "COMPLETED", "FAILING",
                                                        "SUCCEEDING"})

    executor_image_name = Unicode(
        help="Image of the Spark executors (env KF_EXECUTOR_IMAGE_NAME / GP_EXECUTOR_IMAGE_NAME; default: the "
        "kernel image)."
    ).tag(config=True)
    spark_version = Unicode("3.5.0", help="spec.sparkVersion of the application.").tag(config=True)
    main_application_file = Unicode(LAUNCHER_FILE, help="The driver's Python file: the image's kernel launcher.").tag(
        config=True
    )
    driver_cores = Integer(1, help="spec.driver.cores.").tag(config=True)
    driver_memory = Unicode("1g", help="spec.driver.memory.").tag(config=True)
    executor_instances = Integer(2, help="spec.executor.instances.").tag(config=True)
    executor_cores = Integer(1, help="spec.executor.cores.").tag(config=True)
    executor_memory = Unicode("1g", help="spec.executor.memory.").tag(config=True)
    spark_conf = Dict(Unicode(), help="spec.sparkConf of the application.").tag(config=True)
    spark_config_map = Unicode("", help="spec.sparkConfigMap (a ConfigMap with spark-defaults).").tag(config=True)
    driver_command = List(
        Unicode(), help="Run this command in the driver container instead of spark-submit's driver (images that "
        "are not Spark images, e.g. in tests); goes into spec.driver.template."
    ).tag(config=True)
    executor_command = List(
        Unicode(), help="Run this command in the executor containers instead of Spark's executor (images that are "
        "not Spark images, e.g. in tests); goes into spec.executor.template."
    ).tag(config=True)

    @default("executor_image_name")
    def _executor_image_default(self) -> str:
        return env_value(("KF_EXECUTOR_IMAGE_NAME", "GP_EXECUTOR_IMAGE_NAME")) or ""

    def build_resource(self) -> dict[str, Any]:
        kid = self.kernel_id
        assert self.resource_name and self.kernel_namespace and self.token_ref
        memory = {name: jvm_memory(kid, name, value)
                  for name, value in (("driver_memory", self.driver_memory), ("executor_memory", self.executor_memory))}
        executor_image = self.executor_image_name.strip() or self.image
        security = {"runAsUser": self.uid, "runAsGroup": self.gid}
        driver: dict[str, Any] = {
            "cores": self.driver_cores,
            "memory": memory["driver_memory"],
            "labels": self.object_labels(),
            "annotations": dict(self.annotations),
            "serviceAccount": self.service_account,
            "env": env_entries(self.plain_env(), {LAUNCH_TOKEN: self.token_ref}),
            "securityContext": {**security, "allowPrivilegeEscalation": False},
            "podSecurityContext": dict(security),
        }
        if self.host_network:
            driver["hostNetwork"] = True
        if self.driver_command:
            driver["template"] = {"spec": {"containers": [{"name": "spark-kubernetes-driver",
                                                           "command": list(self.driver_command)}]}}
        executor: dict[str, Any] = {
            "instances": self.executor_instances,
            "cores": self.executor_cores,
            "memory": memory["executor_memory"],
            "image": executor_image,
            "labels": {**self.object_labels({}), "component": "worker"},
            "env": env_entries(self.plain_env()),
            "securityContext": {**security, "allowPrivilegeEscalation": False},
        }
        if self.executor_command:
            executor["template"] = {"spec": {"containers": [{"name": "spark-kubernetes-executor",
                                                             "command": list(self.executor_command)}]}}
        spec: dict[str, Any] = {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": self.image,
            "mainApplicationFile": self.main_application_file,
            "sparkVersion": self.spark_version,
            "restartPolicy": {"type": "Never"},
            "driver": driver,
            "executor": executor,
        }
        if self.image_pull_policy:
            spec["imagePullPolicy"] = self.image_pull_policy
        if self.image_pull_secrets:
            spec["imagePullSecrets"] = list(self.image_pull_secrets)
        if self.node_selector:
            spec["nodeSelector"] = dict(self.node_selector)
        if self.spark_conf:
            spec["sparkConf"] = dict(self.spark_conf)
        if self.spark_config_map:
            spec["sparkConfigMap"] = check_dns_subdomain(kid, "spark_config_map", self.spark_config_map)
        return {
            "apiVersion": f"{self.group}/{self.version}",
            "kind": self.kind,
            "metadata": {"name": self.resource_name, "namespace": self.kernel_namespace,
                         "labels": self.object_labels()},
            "spec": spec,
        }

    def resource_state(self, obj: dict[str, Any] | None) -> tuple[str, str]:
        state = ((obj or {}).get("status") or {}).get("applicationState") or {}
        return str(state.get("state") or ""), str(state.get("errorMessage") or "")

    def driver_pod_name(self, obj: dict[str, Any] | None) -> str:
        named = (((obj or {}).get("status") or {}).get("driverInfo") or {}).get("podName")
        return str(named or f"{self.resource_name}-driver")
