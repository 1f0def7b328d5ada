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

from typing import Any, ClassVar

from traitlets import Dict, Integer, List, Unicode, default

from kernelfleet.provisioners.envconfig import env_value
from kernelfleet.provisioners.k8s.custom_resource import CustomResourceProvisioner
from kernelfleet.provisioners.k8s.settings import PodLaunch
from kernelfleet.provisioners.k8s.spark_application import (
    GROUP,
    KIND,
    LAUNCHER_FILE,
    PLURAL,
    VERSION,
    SparkApplicationSettings,
    application_state,
    build_spark_application,
    driver_pod_name,
    unused_template_notice,
)
from kernelfleet.provisioners.k8s.workloads import ResourceKind
from kernelfleet.provisioners.request_env import Engine

SPARK_APPLICATION = ResourceKind(
    group=GROUP, version=VERSION, plural=PLURAL, kind=KIND,
    failed_states=frozenset({"FAILED", "SUBMISSION_FAILED", "FAILING"}),
    ended_states=frozenset({"FAILED", "SUBMISSION_FAILED", "COMPLETED", "FAILING", "SUCCEEDING"}),
    state=application_state, driver_pod=driver_pod_name,
)


class SparkOperatorProvisioner(CustomResourceProvisioner):
    """``spark-operator-provisioner``: the kernel as the driver of a Spark operator ``SparkApplication``.
    Configured per kernelspec or as ``c.SparkOperatorProvisioner.*``."""

    request_engine: ClassVar[Engine | None] = Engine.SPARK_OPERATOR
    launch_engine: ClassVar[str] = "spark-operator"

    resource_kind: ClassVar[ResourceKind] = SPARK_APPLICATION

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
    spark_config_map = Unicode("", help="spec.sparkConfigMap (a ConfigMap with spark-defaults). The kernelspec's "
                               "env KERNEL_SPARKAPP_CONFIG_MAP (Gateway Provisioners' name) overrides it; a request "
                               "may not set that name.").tag(config=True)
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

    def build_resource(self, launch: PodLaunch, name: str) -> dict[str, Any]:
        notice = unused_template_notice(self.kernel_spec.resource_dir if self.kernel_spec is not None else None)
        if notice:
            self.log.warning("Kernel %s: %s", self.kernel_id, notice)
        return build_spark_application(self.application_settings(launch, name))

    def application_settings(self, launch: PodLaunch, name: str) -> SparkApplicationSettings:
        """This launch's SparkApplication as data: the settled launch and this kernelspec's Spark traits."""
        return SparkApplicationSettings(
            name=name, namespace=launch.namespace, kernel_id=launch.kernel_id, image=launch.pod.image,
            uid=launch.pod.uid, gid=launch.pod.gid, service_account=launch.service_account, env=launch.pod.env,
            token_ref=launch.token_ref, labels=self.object_labels(), executor_labels=self.object_labels({}),
            annotations=dict(self.annotations), host_network=self.host_network,
            executor_image=self.executor_image_name, spark_version=self.spark_version,
            main_application_file=self.main_application_file, driver_cores=self.driver_cores,
            driver_memory=self.driver_memory, executor_instances=self.executor_instances,
            executor_cores=self.executor_cores, executor_memory=self.executor_memory,
            spark_conf=dict(self.spark_conf),
            spark_config_map=launch.pod.env.get("KERNEL_SPARKAPP_CONFIG_MAP") or self.spark_config_map,
            driver_command=tuple(self.driver_command), executor_command=tuple(self.executor_command),
            image_pull_policy=self.image_pull_policy,
            image_pull_secrets=tuple(self.image_pull_secrets), node_selector=dict(self.node_selector),
            proxy_user=self.proxy_user() or "",
        )

    def runs_as_requesting_user(self) -> bool:
        return True  # spec.proxyUser: the operator's spark-submit runs the driver as that user

