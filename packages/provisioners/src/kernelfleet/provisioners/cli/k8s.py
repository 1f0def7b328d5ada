"""``jupyter k8s-spec install``: kernelspecs for ``kubernetes-provisioner`` / ``spark-operator-provisioner``."""

from __future__ import annotations

import sys
from typing import Any

from traitlets import Bool, Unicode, default

from kernelfleet.provisioners.cli.base import (
    LANGUAGE_TITLES,
    SPARK_ALIASES,
    SPARK_FLAGS,
    BaseSpecApp,
    SparkSpecInstaller,
    SpecError,
    default_image,
    executor_image_name_from_env,
    image_name_from_env,
    spec_aliases,
    spec_flags,
)
from kernelfleet.provisioners.container_argv import container_argv


class K8sSpecInstaller(SparkSpecInstaller):
    """Install a kernelspec whose kernel runs in its own Kubernetes pod (or Spark operator application)."""

    name = "k8s-spec"
    description = "Install a kernelspec whose kernel runs in a Kubernetes pod made by kubernetes-provisioner."

    image_name = Unicode(
        help="Kernel image (default $KF_IMAGE_NAME or $GP_IMAGE_NAME, else kernelfleet/kernel-<lang>:<version>)."
    ).tag(config=True)
    executor_image_name = Unicode(
        help="With --spark: image of the Spark executors (default $KF_EXECUTOR_IMAGE_NAME or "
        "$GP_EXECUTOR_IMAGE_NAME, else the kernel image)."
    ).tag(config=True)
    crd = Bool(False, help="With --spark: run the kernel as a Spark operator SparkApplication (Python only).").tag(
        config=True
    )

    aliases = spec_aliases(
        SPARK_ALIASES,
        {
            "image-name": "K8sSpecInstaller.image_name",
            "executor-image-name": "K8sSpecInstaller.executor_image_name",
        },
    )
    flags = spec_flags(
        SPARK_FLAGS,
        {
            "crd": ({"K8sSpecInstaller": {"crd": True}}, "Use the Spark operator (needs --spark; Python only)."),
        },
    )

    @default("image_name")
    def _image_name_default(self) -> str:
        return image_name_from_env()

    @default("executor_image_name")
    def _executor_image_name_default(self) -> str:
        return executor_image_name_from_env()

    @default("spark_home")
    def _spark_home_default(self) -> str:
        # Spark lives in the image, not on this machine: the host's $SPARK_HOME says nothing about it.
        return "/opt/spark"

    def check_target(self) -> None:
        if self.crd and not self.spark:
            raise SpecError("--crd needs --spark: the Spark operator only runs Spark applications")
        if self.crd and self.lang != "python":
            raise SpecError("--crd supports Python kernels only")
        if not self.spark and self.executor_image_name and self.executor_image_name != executor_image_name_from_env():
            self.log.warning("--executor-image-name is ignored without --spark")

    def provisioner_name(self) -> str:
        return "spark-operator-provisioner" if self.crd else "kubernetes-provisioner"

    def default_kernel_name(self) -> str:
        if self.crd:
            return "k8s_python_spark_operator"
        return f"k8s_{self.lang}{self.spark_suffixes()[0]}"

    def default_display_name(self) -> str:
        if self.crd:
            return "Kubernetes Spark Operator"
        return f"Kubernetes {LANGUAGE_TITLES[self.lang]}{self.spark_suffixes()[1]}"

    def build_argv(self) -> list[str]:
        mode = self.spark_mode() if (self.spark or self.lang != "python") else None
        return container_argv(kernel_class_name=self.kernel_class_name(), spark_init_mode=mode)

    def kernel_image(self) -> str:
        return self.image_name.strip() or default_image(self.lang, spark=self.spark)

    def target_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"image_name": self.kernel_image()}
        if self.spark:
            config["executor_image_name"] = self.executor_image_name.strip() or config["image_name"]
        return config


class K8sSpecApp(BaseSpecApp):
    """``jupyter k8s-spec``."""

    name = "jupyter-k8s-spec"
    description = "Kernelspecs for kernels that run in Kubernetes pods (kubernetes-provisioner)."
    subcommands = {"install": (K8sSpecInstaller, K8sSpecInstaller.description)}


def main() -> None:
    K8sSpecApp.launch_instance()


if __name__ == "__main__":
    sys.exit(main())
