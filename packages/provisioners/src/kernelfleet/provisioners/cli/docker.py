"""``jupyter docker-spec install``: kernelspecs for ``docker-provisioner`` / ``docker-swarm-provisioner``."""

from __future__ import annotations

import sys
from typing import Any

from traitlets import Bool, Unicode, default

from kernelfleet.provisioners.cli.base import (
    LANGUAGE_TITLES,
    BaseSpecApp,
    BaseSpecInstaller,
    default_image,
    image_name_from_env,
    spec_aliases,
    spec_flags,
)
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

    aliases = spec_aliases({"image-name": "DockerSpecInstaller.image_name", "network": "DockerSpecInstaller.network"})
    flags = spec_flags(
        {"swarm": ({"DockerSpecInstaller": {"swarm": True}}, "Use docker-swarm-provisioner (a Swarm service).")}
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

    def build_argv(self) -> list[str]:
        mode = None if self.lang == "python" else "none"
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
