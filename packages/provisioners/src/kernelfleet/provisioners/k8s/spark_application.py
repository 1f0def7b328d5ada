"""The Spark operator's ``SparkApplication`` (sparkoperator.k8s.io/v1beta2) as data: ``SparkApplicationSettings``
in, the manifest out, as ``build_pod`` does for a kernel pod.

Only validated values reach the manifest: memory amounts in Spark's spelling, a ConfigMap name that is a DNS
subdomain, the kernel's environment without the launch token (the driver reads ``LAUNCH_TOKEN`` from the launch's
Secret through ``valueFrom.secretKeyRef``; executors do not get it, only the driver reports). No I/O, no engine
import: ``SparkOperatorProvisioner`` builds the settings from its traits and the settled ``PodLaunch``, and the unit
tests call ``build_spark_application`` without a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelfleet.protocol.contract import LAUNCH_TOKEN
from kernelfleet.provisioners.k8s.pod import PodSpecError, SecretKeyRef, env_entries
from kernelfleet.provisioners.spec_values import check_dns_subdomain

GROUP = "sparkoperator.k8s.io"
VERSION = "v1beta2"
KIND = "SparkApplication"
PLURAL = "sparkapplications"
LAUNCHER_FILE = "local:///usr/local/bin/kernel-launchers/python/launch_ipykernel.py"
JVM_MEMORY = re.compile(r"[1-9][0-9]{0,6}[kmgtKMGT]?")
DRIVER_CONTAINER = "spark-kubernetes-driver"
EXECUTOR_CONTAINER = "spark-kubernetes-executor"


#: Gateway Provisioners' editable SparkApplication template in a kernelspec (``jupyter k8s-spec install --crd``).
GP_TEMPLATE = "scripts/sparkoperator.k8s.io-v1beta2.yaml.j2"
SETTINGS_INSTEAD = ("spark_conf, spark_config_map (or the kernelspec's env KERNEL_SPARKAPP_CONFIG_MAP), driver_cores, "
                    "driver_memory, executor_instances, executor_cores, executor_memory, executor_image_name, "
                    "main_application_file, annotations, labels, node_selector, image_pull_secrets")


def unused_template_notice(resource_dir: str | None) -> str | None:
    """The warning for a kernelspec that still carries GP's SparkApplication template, which is not rendered here
    (the application is built from typed settings, so no request value can reach its structure); None without one.
    ``SparkOperatorProvisioner`` logs it at each launch."""
    if not resource_dir or not (Path(resource_dir) / GP_TEMPLATE).is_file():
        return None
    return (f"the kernelspec's {Path(resource_dir) / GP_TEMPLATE} (Gateway Provisioners' SparkApplication template) "
            f"is not used: the application is built from spark-operator-provisioner's settings; move what you "
            f"changed in it to {SETTINGS_INSTEAD}")


def resource_env(name: str) -> dict[str, str]:
    """Gateway Provisioners' names for the application a kernel is the driver of, in the driver's and executors'
    environment as GP put them there: ``KERNEL_RESOURCE_NAME`` and ``KERNEL_CRD_GROUP/VERSION/PLURAL``."""
    return {"KERNEL_RESOURCE_NAME": name, "KERNEL_CRD_GROUP": GROUP, "KERNEL_CRD_VERSION": VERSION,
            "KERNEL_CRD_PLURAL": PLURAL}


def jvm_memory(kernel_id: str, name: str, value: str) -> str:
    """Spark's memory spelling ("1g", "512m"), checked like any other value that reaches a manifest."""
    if not JVM_MEMORY.fullmatch(value):
        raise PodSpecError(f"Kernel {kernel_id}: {name}={value[:40]!r} is not a Spark memory amount (e.g. 1g, 512m)")
    return value


@dataclass(frozen=True)
class SparkApplicationSettings:
    """One kernel's SparkApplication: the settled launch (names, ids, image, environment) and the kernelspec's
    Spark settings (``SparkOperatorProvisioner``'s traits)."""

    name: str
    namespace: str
    kernel_id: str
    image: str
    uid: int
    gid: int
    service_account: str
    env: Mapping[str, str]  # the kernel's variables without the launch token
    token_ref: SecretKeyRef
    labels: Mapping[str, str]  # the driver's and the application's (the kernelspec's, the kernel's, the server's)
    executor_labels: Mapping[str, str]  # the kernel's and the server's, without the kernelspec's
    annotations: Mapping[str, str] = field(default_factory=dict)
    host_network: bool = False
    executor_image: str = ""  # empty: the kernel image
    spark_version: str = "3.5.0"
    main_application_file: str = LAUNCHER_FILE
    driver_cores: int = 1
    driver_memory: str = "1g"
    executor_instances: int = 2
    executor_cores: int = 1
    executor_memory: str = "1g"
    spark_conf: Mapping[str, str] = field(default_factory=dict)
    spark_config_map: str = ""
    driver_command: tuple[str, ...] = ()
    executor_command: tuple[str, ...] = ()
    image_pull_policy: str = ""
    image_pull_secrets: tuple[str, ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)
    proxy_user: str = ""  # impersonation_enabled: the requesting user, already checked (spec.proxyUser)


def build_spark_application(s: SparkApplicationSettings) -> dict[str, Any]:
    """The SparkApplication manifest of ``s``; raises ``PodSpecError`` / ``K8sNameError`` for a value Spark or
    Kubernetes would refuse."""
    kid = s.kernel_id
    driver_memory = jvm_memory(kid, "driver_memory", s.driver_memory)
    executor_memory = jvm_memory(kid, "executor_memory", s.executor_memory)
    security = {"runAsUser": s.uid, "runAsGroup": s.gid}
    env = {**s.env, **resource_env(s.name)}  # the provisioner's names win over a request's
    driver: dict[str, Any] = {
        "cores": s.driver_cores,
        "memory": driver_memory,
        "labels": dict(s.labels),
        "annotations": dict(s.annotations),
        "serviceAccount": s.service_account,
        "env": env_entries(env, {LAUNCH_TOKEN: s.token_ref}),
        "securityContext": {**security, "allowPrivilegeEscalation": False},
        "podSecurityContext": dict(security),
    }
    if s.host_network:
        driver["hostNetwork"] = True
    if s.driver_command:
        driver["template"] = {"spec": {"containers": [{"name": DRIVER_CONTAINER, "command": list(s.driver_command)}]}}
    executor: dict[str, Any] = {
        "instances": s.executor_instances,
        "cores": s.executor_cores,
        "memory": executor_memory,
        "image": s.executor_image.strip() or s.image,
        "labels": {**s.executor_labels, "component": "worker"},
        "env": env_entries(env),
        "securityContext": {**security, "allowPrivilegeEscalation": False},
    }
    if s.executor_command:
        executor["template"] = {"spec": {"containers": [{"name": EXECUTOR_CONTAINER,
                                                         "command": list(s.executor_command)}]}}
    spec: dict[str, Any] = {
        "type": "Python",
        "pythonVersion": "3",
        "mode": "cluster",
        "image": s.image,
        "mainApplicationFile": s.main_application_file,
        "sparkVersion": s.spark_version,
        "restartPolicy": {"type": "Never"},
        "driver": driver,
        "executor": executor,
    }
    if s.image_pull_policy:
        spec["imagePullPolicy"] = s.image_pull_policy
    if s.image_pull_secrets:
        spec["imagePullSecrets"] = list(s.image_pull_secrets)
    if s.node_selector:
        spec["nodeSelector"] = dict(s.node_selector)
    if s.spark_conf:
        spec["sparkConf"] = dict(s.spark_conf)
    if s.proxy_user:
        spec["proxyUser"] = s.proxy_user  # the operator's spark-submit --proxy-user
    if s.spark_config_map:
        spec["sparkConfigMap"] = check_dns_subdomain(kid, "spark_config_map", s.spark_config_map)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": s.name, "namespace": s.namespace, "labels": dict(s.labels)},
        "spec": spec,
    }


def application_state(obj: Mapping[str, Any] | None) -> tuple[str, str]:
    """(state, the operator's error message) of a SparkApplication; ("", "") while it has none."""
    state = ((obj or {}).get("status") or {}).get("applicationState") or {}
    return str(state.get("state") or ""), str(state.get("errorMessage") or "")


def driver_pod_name(obj: Mapping[str, Any] | None, application: str) -> str:
    """The driver pod the operator made for ``application``: its status says, else the operator's default name."""
    named = (((obj or {}).get("status") or {}).get("driverInfo") or {}).get("podName")
    return str(named or f"{application}-driver")
