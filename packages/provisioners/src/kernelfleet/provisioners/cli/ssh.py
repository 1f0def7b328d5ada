"""``jupyter ssh-spec install``: kernelspecs for ``distributed-provisioner`` (local or SSH hosts).

Unlike the container targets, this argv really runs: on the chosen host, over SSH, or as a local
process when the host is this machine. The ``ssh_python`` spec without ``--remote-hosts`` is the
project's embedded default: the provisioner's ``remote_hosts`` defaults to localhost.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import sys
from typing import Any

from traitlets import List, Unicode, default

from kernelfleet.provisioners.cli.base import (
    LANGUAGE_TITLES,
    SPARK_ALIASES,
    SPARK_FLAGS,
    BaseSpecApp,
    SparkSpecInstaller,
    SpecError,
    spec_aliases,
    spec_flags,
)
from kernelfleet.provisioners.container_argv import launcher_args

DEFAULT_LAUNCHERS_DIR = "/usr/local/bin/kernel-launchers"


class SshSpecInstaller(SparkSpecInstaller):
    """Install a kernelspec whose kernel is started on one of a list of hosts."""

    name = "ssh-spec"
    description = "Install a kernelspec whose kernel runs on SSH hosts (or locally) via distributed-provisioner."

    remote_hosts = List(
        Unicode(), help="Hosts to run kernels on, round robin (repeat the option; default: the provisioner's)."
    ).tag(config=True)
    python = Unicode(help="Python interpreter that runs the launcher on the hosts (default: this one).").tag(
        config=True
    )
    launchers_dir = Unicode(
        DEFAULT_LAUNCHERS_DIR, help="Where the R and Scala launchers are installed on the hosts."
    ).tag(config=True)
    spark_master = Unicode("", help="With --spark: the Spark master, added to SPARK_OPTS as --master.").tag(config=True)

    aliases = spec_aliases(
        SPARK_ALIASES,
        {
            "remote-hosts": "SshSpecInstaller.remote_hosts",
            "python": "SshSpecInstaller.python",
            "launchers-dir": "SshSpecInstaller.launchers_dir",
            "spark-master": "SshSpecInstaller.spark_master",
        },
    )
    flags = spec_flags(
        SPARK_FLAGS,
    )

    @default("python")
    def _python_default(self) -> str:
        return sys.executable

    def check_target(self) -> None:
        for host in self.remote_hosts:
            if not host.strip() or any(ch.isspace() for ch in host.strip()):
                raise SpecError(f"--remote-hosts {host!r} is not a host name")
        if not self.python.strip():
            raise SpecError("--python must name an interpreter")
        if not posixpath.isabs(self.launchers_dir):
            raise SpecError(f"--launchers-dir {self.launchers_dir!r} must be an absolute path")

    def missing_on_this_host(self) -> list[str]:
        """What the argv needs and this host lacks. It matters when this host is one of the kernel's hosts (the
        embedded default) and hints at what the other hosts need, as Gateway Provisioners warned about a missing
        Rscript or Toree."""
        where = "every host in --remote-hosts" if self.remote_hosts else "this host (the default, localhost)"
        missing = []
        if self.lang == "r" and shutil.which("Rscript") is None:
            missing.append(f"Rscript is not on this host's PATH: R kernels of this spec need it on {where}")
        if self.lang != "python" or self.spark:
            launcher = self.build_argv()[0 if self.lang == "scala" else 1]
            if not os.path.isfile(launcher):
                missing.append(f"{launcher} does not exist here: install the {LANGUAGE_TITLES[self.lang]} launcher "
                               f"on {where} (jupyter image-bootstrap install), or give --launchers-dir")
        if self.spark and not os.path.isfile(posixpath.join(self.spark_home, "bin", "spark-submit")):
            missing.append(f"--spark-home {self.spark_home}: no bin/spark-submit here; Spark kernels of this spec "
                           f"need Spark there on {where}")
        return missing

    def provisioner_name(self) -> str:
        return "distributed-provisioner"

    def default_kernel_name(self) -> str:
        return f"ssh_{self.lang}{self.spark_suffixes()[0]}"

    def default_display_name(self) -> str:
        return f"{LANGUAGE_TITLES[self.lang]} on SSH hosts{self.spark_suffixes()[1]}"

    def build_argv(self) -> list[str]:
        if self.lang == "python":
            if self.spark:  # spark-submit runs a file: the launcher's script, as jupyter image-bootstrap installs it
                args = launcher_args(kernel_class_name=self.kernel_class_name(), spark_init_mode=self.spark_mode())
                script = posixpath.join(self.launchers_dir, "python", "launch_ipykernel.py")
                return [self.python.strip(), script, *args]
            args = launcher_args(
                kernel_class_name=self.kernel_class_name(),
                spark_init_mode=self.spark_mode() if self.spark else None,
            )
            return [self.python.strip(), "-m", "kernelfleet.launcher", *args]
        args = launcher_args(spark_init_mode=self.spark_mode())
        if self.lang == "r":
            return ["Rscript", posixpath.join(self.launchers_dir, "r", "launch_IRkernel.R"), *args]
        return [posixpath.join(self.launchers_dir, "scala", "bin", "run.sh"), *args]

    def spark_opts(self) -> str:
        master = f"--master {self.spark_master.strip()}" if self.spark_master.strip() else ""
        return " ".join(part for part in (master, super().spark_opts()) if part)

    def target_config(self) -> dict[str, Any]:
        hosts = list(dict.fromkeys(host.strip() for host in self.remote_hosts))
        config: dict[str, Any] = {"remote_hosts": hosts} if hosts else {}
        if self.spark and self.lang in ("python", "r"):  # Scala's run.sh runs spark-submit itself
            config["spark_submit"] = True
        return config


class SshSpecApp(BaseSpecApp):
    """``jupyter ssh-spec``."""

    name = "jupyter-ssh-spec"
    description = "Kernelspecs for kernels that run on SSH hosts or locally (distributed-provisioner)."
    subcommands = {"install": (SshSpecInstaller, SshSpecInstaller.description)}


def main() -> None:
    SshSpecApp.launch_instance()


if __name__ == "__main__":
    sys.exit(main())
