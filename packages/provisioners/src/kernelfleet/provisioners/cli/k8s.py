"""``jupyter k8s-spec install``: kernelspecs for ``kubernetes-provisioner`` / ``spark-operator-provisioner``."""

from __future__ import annotations

import os
import sys
from typing import Any

from jupyter_core.application import JupyterApp
from traitlets import Bool, Enum, Int, List, Unicode, default

from kernelfleet.provisioners.cli.base import (
    LANGUAGE_TITLES,
    SPARK_ALIASES,
    SPARK_FLAGS,
    BaseSpecApp,
    SparkSpecInstaller,
    SpecError,
    default_image,
    default_spark_image,
    executor_image_name_from_env,
    image_name_from_env,
    image_tag,
    package_version,
    spec_aliases,
    spec_flags,
    tensorflow_flag,
)
from kernelfleet.provisioners.container_argv import container_argv, launcher_args
from kernelfleet.provisioners.k8s import deploy_kit, rbac

#: The launcher files inside kernel-spark-py / kernel-spark-r, as spark-submit's application file.
SPARK_LAUNCHER_FILES = {
    "python": "local:///usr/local/bin/kernel-launchers/python/launch_ipykernel.py",
    "r": "local:///usr/local/bin/kernel-launchers/r/launch_IRkernel.R",
}


def spark_submit_argv(spark_home: str, launcher_file: str, args: list[str]) -> list[str]:
    """Pure: a cluster-mode kernelspec's argv; ``kubernetes-provisioner`` adds the env's ``SPARK_OPTS`` (split
    without a shell), the master, namespace, images, pod template and labels (``k8s.spark_submit``)."""
    return [f"{spark_home.rstrip('/')}/bin/spark-submit", "--deploy-mode", "cluster", launcher_file, *args]


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
        tensorflow_flag("K8sSpecInstaller"),
    )

    @default("image_name")
    def _image_name_default(self) -> str:
        return image_name_from_env()

    @default("executor_image_name")
    def _executor_image_name_default(self) -> str:
        return executor_image_name_from_env()

    @default("spark_home")
    def _spark_home_default(self) -> str:
        # Python/R: spark-submit runs on the server (this machine's $SPARK_HOME); Scala: Spark is in the image.
        if self.spark and not self.crd and self.lang in SPARK_LAUNCHER_FILES:
            return os.environ.get("SPARK_HOME") or "/opt/spark"
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

    def cluster_mode(self) -> bool:
        """Python and R Spark kernels run as Spark's driver pod, through spark-submit in cluster mode (GP's
        ``k8s_*_spark``); Scala's (Toree) starts Spark inside its pod."""
        return self.spark and not self.crd and self.lang in SPARK_LAUNCHER_FILES

    def build_argv(self) -> list[str]:
        mode = self.spark_mode() if (self.spark or self.lang != "python") else None
        if self.cluster_mode():
            return spark_submit_argv(self.spark_home, SPARK_LAUNCHER_FILES[self.lang],
                                     launcher_args(kernel_class_name=self.kernel_class_name(), spark_init_mode=mode))
        return container_argv(kernel_class_name=self.kernel_class_name(), spark_init_mode=mode)

    def kernel_image(self) -> str:
        if self.image_name.strip():
            return self.image_name.strip()
        return default_spark_image(self.lang) if self.cluster_mode() else default_image(self.lang)

    def target_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"image_name": self.kernel_image()}
        if self.spark:
            config["executor_image_name"] = self.executor_image_name.strip() or config["image_name"]
        return config


class RbacPrinter(JupyterApp):
    """``jupyter k8s-spec rbac``: print the least-privilege RBAC manifests the server's service account needs."""

    name = "k8s-spec-rbac"
    description = ("Print the least-privilege RBAC manifests (YAML for kubectl apply -f -) for the Jupyter server's "
                   "service account: --layout shared-namespace (default) or kernel-namespaces.")
    layout = Enum(list(rbac.VARIANTS), default_value=rbac.SHARED,
                  help="shared-namespace: every kernel in --kernel-namespace (KF_SHARED_NAMESPACE on, the default); "
                  "kernel-namespaces: a namespace per kernel (KF_SHARED_NAMESPACE=false).").tag(config=True)
    server_namespace = Unicode(rbac.RbacSettings.server_namespace,
                               help="Namespace of the Jupyter server's service account.").tag(config=True)
    server_account = Unicode(rbac.RbacSettings.server_account,
                             help="The Jupyter server's service account.").tag(config=True)
    kernel_namespace = Unicode(rbac.RbacSettings.kernel_namespace,
                               help="shared-namespace layout: the kernels' namespace (KF_NAMESPACE).").tag(config=True)
    kernel_cluster_role = Unicode(rbac.RbacSettings.kernel_cluster_role,
                                  help="kernel-namespaces layout: ClusterRole bound to kernels in their namespace "
                                  "(KF_KERNEL_CLUSTER_ROLE).").tag(config=True)
    template_kinds = List(Unicode(), help="Kinds the kernelspecs' pod templates create next to the Pod "
                          "(template_object_kinds; repeat): the server gets create, get and delete on them.").tag(
        config=True)
    spark_driver_account = Unicode("", help="Spark on Kubernetes in cluster mode: the driver pods' service account "
                                   "(the kernelspecs' service_account_name; made unless 'default'), which gets the "
                                   "spark-driver Role in the kernels' namespace; the server gets what spark-submit "
                                   "needs.").tag(config=True)
    aliases = {
        "layout": "RbacPrinter.layout",
        "template-kind": "RbacPrinter.template_kinds",
        "spark-driver-account": "RbacPrinter.spark_driver_account",
        "server-namespace": "RbacPrinter.server_namespace",
        "server-account": "RbacPrinter.server_account",
        "kernel-namespace": "RbacPrinter.kernel_namespace",
        "kernel-cluster-role": "RbacPrinter.kernel_cluster_role",
    }

    def rbac_settings(self) -> rbac.RbacSettings:
        try:
            return rbac.RbacSettings(self.server_namespace, self.server_account, self.kernel_namespace,
                                     self.kernel_cluster_role, tuple(self.template_kinds), self.spark_driver_account)
        except ValueError as err:
            self.log.error("%s", err)
            self.exit(2)
            raise

    def start(self) -> None:
        sys.stdout.write(rbac.render(self.layout, self.rbac_settings()))


class DeployPrinter(RbacPrinter):
    """``jupyter k8s-spec deploy``: print the deployment kit (the server's Deployment and Service, the kernel-image
    puller DaemonSet), optionally after the RBAC of the same layout; ``deploy/kubernetes/server-*.yaml`` are its
    output with the defaults."""

    name = "k8s-spec-deploy"
    description = ("Print the deployment kit (YAML for kubectl apply -f -): the Jupyter server's Deployment and "
                   "Service (HTTP and response ports) and a kernel-image puller DaemonSet; --with-rbac prepends the "
                   "layout's RBAC.")
    server_image = Unicode(help="The application image (default kernelfleet/server:<version>).").tag(config=True)
    kernel_images = List(Unicode(), help="Kernel images the puller keeps on every node (repeat; default "
                         "kernelfleet/kernel-py:<version>).").tag(config=True)
    http_port = Int(deploy_kit.DeployKitSettings.http_port, help="The server's HTTP port.").tag(config=True)
    response_port = Int(deploy_kit.DeployKitSettings.response_port,
                        help="The response port kernels report to (KF_RESPONSE_PORT).").tag(config=True)
    token_secret = Unicode(deploy_kit.DeployKitSettings.token_secret,
                           help="The Secret (key 'token') holding the server's HTTP token.").tag(config=True)
    with_rbac = Bool(False, help="Print the layout's RBAC first.").tag(config=True)
    aliases = {
        **RbacPrinter.aliases,
        "server-image": "DeployPrinter.server_image",
        "kernel-image": "DeployPrinter.kernel_images",
        "http-port": "DeployPrinter.http_port",
        "response-port": "DeployPrinter.response_port",
        "token-secret": "DeployPrinter.token_secret",
    }
    flags = {"with-rbac": ({"DeployPrinter": {"with_rbac": True}}, "Print the layout's RBAC first.")}

    @default("server_image")
    def _server_image_default(self) -> str:
        return f"kernelfleet/server:{image_tag(package_version())}"

    @default("kernel_images")
    def _kernel_images_default(self) -> list[str]:
        return [default_image("python")]

    def settings(self) -> deploy_kit.DeployKitSettings:
        return deploy_kit.DeployKitSettings(
            server_image=self.server_image, kernel_images=tuple(self.kernel_images), layout=self.layout,
            rbac=self.rbac_settings(),
            http_port=self.http_port, response_port=self.response_port, token_secret=self.token_secret)

    def start(self) -> None:
        sys.stdout.write(deploy_kit.render(self.settings(), with_rbac=self.with_rbac))


class K8sSpecApp(BaseSpecApp):
    """``jupyter k8s-spec``."""

    name = "jupyter-k8s-spec"
    description = "Kernelspecs for kernels that run in Kubernetes pods (kubernetes-provisioner)."
    subcommands = {"install": (K8sSpecInstaller, K8sSpecInstaller.description),
                   "rbac": (RbacPrinter, RbacPrinter.description),
                   "deploy": (DeployPrinter, DeployPrinter.description)}


def main() -> None:
    K8sSpecApp.launch_instance()


if __name__ == "__main__":
    sys.exit(main())
