"""``jupyter docker-spec install``: kernelspecs for ``docker-provisioner`` / ``docker-swarm-provisioner``."""

from __future__ import annotations

import sys
from typing import Any

from traitlets import Bool, Unicode, default

from kernelfleet.provisioners.cli.base import (
    LANGUAGE_TITLES,
    SPARK_INIT_MODES,
    BaseSpecApp,
    BaseSpecInstaller,
    default_image,
    image_name_from_env,
    spec_aliases,
    spec_flags,
    tensorflow_flag,
)
from kernelfleet.provisioners.cli.kernelspec import SpecError
from kernelfleet.provisioners.container_argv import container_argv


class DockerSpecInstaller(BaseSpecInstaller):
    """Install a kernelspec whose kernel runs in its own Docker container (or Swarm service)."""

    name = "docker-spec"
    description = "Install a kernelspec whose kernel runs in a Docker container made by docker-provisioner."

    image_name = Unicode(
        help="Kernel image (default $KF_IMAGE_NAME or $GP_IMAGE_NAME, else kernelfleet/kernel-<lang>:<version>)."
    ).tag(config=True)
    swarm = Bool(False, help="Run the kernel as a Docker Swarm service (docker-swarm-provisioner).").tag(config=True)
    network = Unicode(
        help="Docker network of the kernel containers: host, bridge or a named network (default: the "
        "provisioner's, $KF_DOCKER_NETWORK / $GP_DOCKER_NETWORK, else bridge)."
    ).tag(config=True)

    spark_init_mode = Unicode(
        "none", help="When the kernel makes its Spark context: none (default), lazy or eager (the image needs Spark)."
    ).tag(config=True)

    aliases = spec_aliases({
        "image-name": "DockerSpecInstaller.image_name",
        "network": "DockerSpecInstaller.network",
        "spark-init-mode": "DockerSpecInstaller.spark_init_mode",
    })
    flags = spec_flags(
        {"swarm": ({"DockerSpecInstaller": {"swarm": True}}, "Use docker-swarm-provisioner (a Swarm service).")},
        tensorflow_flag("DockerSpecInstaller"),
    )

    @default("image_name")
    def _image_name_default(self) -> str:
        return image_name_from_env()

    def provisioner_name(self) -> str:
        return "docker-swarm-provisioner" if self.swarm else "docker-provisioner"

    def default_kernel_name(self) -> str:
        # GP gave Swarm specs the plain names, so one overwrote the other; these can coexist.
        return f"docker_swarm_{self.lang}" if self.swarm else f"docker_{self.lang}"

    def default_display_name(self) -> str:
        return f"Docker {'Swarm ' if self.swarm else ''}{LANGUAGE_TITLES[self.lang]}"

    def check_options(self) -> None:
        super().check_options()
        if self.spark_init_mode.strip().lower() not in SPARK_INIT_MODES:
            raise SpecError(f"--spark-init-mode {self.spark_init_mode!r} is not one of lazy, eager or none")

    def build_argv(self) -> list[str]:
        mode: str | None = self.spark_init_mode.strip().lower()
        if mode == "none" and self.lang == "python":
            mode = None  # the launcher's default; keeps the argv GP wrote for Python
        return container_argv(kernel_class_name=self.kernel_class_name(), spark_init_mode=mode)

    def target_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"image_name": self.image_name.strip() or default_image(self.lang)}
        if self.network.strip():
            config["network"] = self.network.strip()
        return config


class DockerSpecApp(BaseSpecApp):
    """``jupyter docker-spec``."""

    name = "jupyter-docker-spec"
    description = "Kernelspecs for kernels that run in Docker containers or Swarm services."
    subcommands = {"install": (DockerSpecInstaller, DockerSpecInstaller.description)}


def main() -> None:
    DockerSpecApp.launch_instance()


if __name__ == "__main__":
    sys.exit(main())
