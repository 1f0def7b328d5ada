"""Options and install flow shared by every ``jupyter *-spec`` tool.

Each tool is a traitlets ``Application`` with a single ``install`` subcommand. A target module
only says which provisioner it writes, its default names, argv, config and env; the options, the
checks and the writing live here once. User mistakes end in one ``error`` line and exit status 1
before anything is written.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import sys
from typing import Any, ClassVar

from jupyter_client.kernelspec import KernelSpecManager
from traitlets import Bool, Int, List, Unicode, default
from traitlets.config import Application

from kernelfleet.protocol import PortRange, PortRangeError
from kernelfleet.protocol.contract import DEFAULT_KERNEL_CLASS, SPARK_INIT_MODES
from kernelfleet.provisioners.cli.kernelspec import (
    SpecError,
    install_kernel_json,
    normalise_kernel_name,
    render_kernel_json,
)
from kernelfleet.provisioners.cli.resources import kernel_resources
from kernelfleet.provisioners.envconfig import env_value

# Language as typed (any case) -> the spelling kernel.json uses (GP's, and IRkernel's "R").
LANGUAGES: dict[str, str] = {"python": "python", "r": "R", "scala": "scala"}
LANGUAGE_TITLES: dict[str, str] = {"python": "Python", "r": "R", "scala": "Scala"}
MIN_PORT_RANGE_SIZE = 1000
_DOTTED_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")

_ALIASES: dict[str, str] = {
    "kernel-name": "BaseSpecInstaller.kernel_name",
    "display-name": "BaseSpecInstaller.display_name",
    "language": "BaseSpecInstaller.language",
    "prefix": "BaseSpecInstaller.prefix",
    "authorized-users": "BaseSpecInstaller.authorized_users",
    "unauthorized-users": "BaseSpecInstaller.unauthorized_users",
    "port-range": "BaseSpecInstaller.port_range",
    "launch-timeout": "BaseSpecInstaller.launch_timeout",
    "ipykernel-subclass-name": "BaseSpecInstaller.ipykernel_subclass_name",
}
_FLAGS: dict[str, tuple[dict[str, Any], str]] = {
    "user": ({"BaseSpecInstaller": {"user": True}}, "Install for the current user (Jupyter data dir)."),
    "sys-prefix": ({"BaseSpecInstaller": {"sys_prefix": True}}, f"Install into sys.prefix ({sys.prefix})."),
    "replace": ({"BaseSpecInstaller": {"replace": True}}, "Overwrite an existing kernelspec of the same name."),
}
SPARK_ALIASES: dict[str, str] = {
    "spark-home": "SparkSpecInstaller.spark_home",
    "spark-init-mode": "SparkSpecInstaller.spark_init_mode",
    "extra-spark-opts": "SparkSpecInstaller.extra_spark_opts",
}
SPARK_FLAGS: dict[str, tuple[dict[str, Any], str]] = {
    "spark": ({"SparkSpecInstaller": {"spark": True}}, "Make a kernelspec whose kernel starts a Spark context."),
}


#: Gateway Provisioners 0.5.0's ``--tensorflow`` (k8s-spec, docker-spec) is a flag its installer never reads: the
#: kernelspec is the same with or without it. It is accepted, so GP install scripts keep working, and says so.
TENSORFLOW_IGNORED = ("--tensorflow changes nothing (Gateway Provisioners 0.5.0 never read it either): name an image "
                      "with TensorFlow with --image-name (and --kernel-name / --display-name to tell it apart)")


def tensorflow_flag(installer: str) -> dict[str, tuple[dict[str, Any], str]]:
    """The ``--tensorflow`` flag of a container target's installer class ``installer``."""
    return {"tensorflow": ({installer: {"tensorflow": True}}, "Accepted for Gateway Provisioners' scripts; has no "
                           "effect (as in GP 0.5.0). Name a TensorFlow image with --image-name.")}


def spec_aliases(*extra: dict[str, str]) -> dict[str, Any]:
    """Application's own aliases (--log-level) plus ours; targets add theirs."""
    merged: dict[str, Any] = {**Application.aliases, **_ALIASES}
    for more in extra:
        merged.update(more)
    return merged


def spec_flags(*extra: dict[str, tuple[dict[str, Any], str]]) -> dict[str, Any]:
    """Application's own flags (--debug) plus ours; targets add theirs."""
    merged: dict[str, Any] = {**Application.flags, **_FLAGS}
    for more in extra:
        merged.update(more)
    return merged


class BaseSpecInstaller(Application):
    """``install``: validate the options, render kernel.json in memory, then install it."""

    # Set by each target.
    target_title: ClassVar[str] = ""

    kernel_name = Unicode("", help="Kernelspec directory name (default depends on target and language).").tag(
        config=True
    )
    display_name = Unicode("", help="Name shown in front ends (default depends on target and language).").tag(
        config=True
    )
    language = Unicode("python", help="Kernel language: python, r or scala (any case).").tag(config=True)
    prefix = Unicode("", help="Install into PREFIX/share/jupyter/kernels.").tag(config=True)
    user = Bool(False, help="Install for the current user.").tag(config=True)
    sys_prefix = Bool(False, help="Install into sys.prefix.").tag(config=True)
    replace = Bool(False, help="Overwrite an existing kernelspec.").tag(config=True)
    authorized_users = List(Unicode(), help="Only these users may start the kernel (repeat the option).").tag(
        config=True
    )
    unauthorized_users = List(Unicode(), help="These users may never start the kernel (repeat the option).").tag(
        config=True
    )
    port_range = Unicode(
        "0..0", help="Ports the kernel may use, 'lower..upper' within 1024..65535 (>= 1000 ports), or 0..0 for any."
    ).tag(config=True)
    launch_timeout = Int(30, help="Seconds to wait for the kernel to report back.").tag(config=True)
    ipykernel_subclass_name = Unicode(
        DEFAULT_KERNEL_CLASS, help="Python only: the kernel class the launcher runs."
    ).tag(config=True)

    tensorflow = Bool(False, help="Container targets: accepted for Gateway Provisioners' scripts, no effect.").tag(
        config=True
    )

    aliases = spec_aliases()
    flags = spec_flags()

    @default("log_level")
    def _log_level_default(self) -> int:
        return logging.INFO

    @property
    def lang(self) -> str:
        """The language in canonical lower case (valid after ``check_options``)."""
        return self.language.strip().lower()

    # --- what a target provides -------------------------------------------------------------
    def provisioner_name(self) -> str:
        raise NotImplementedError

    def default_kernel_name(self) -> str:
        raise NotImplementedError

    def default_display_name(self) -> str:
        raise NotImplementedError

    def build_argv(self) -> list[str]:
        raise NotImplementedError

    def target_config(self) -> dict[str, Any]:
        """Provisioner config entries that come before the common ones."""
        return {}

    def target_env(self) -> dict[str, str]:
        return {}

    def check_target(self) -> None:
        """Target-specific option checks; raise SpecError."""

    def missing_on_this_host(self) -> list[str]:
        """Warnings about what the kernel will need where it runs and this host lacks (Rscript, a launcher,
        spark-submit), for targets whose kernels may run here; installing still goes ahead, as the kernel may
        run elsewhere. None by default: container targets bring everything in their image."""
        return []

    # --- shared flow ------------------------------------------------------------------------
    def start(self) -> None:
        try:
            if self.extra_args:
                raise SpecError(
                    f"unexpected argument(s) {' '.join(self.extra_args)!r}; "
                    "repeat an option to give it several values (--authorized-users alice --authorized-users bob)"
                )
            self.install()
        except SpecError as err:
            self.log.error("%s", err)
            self.exit(1)

    def install(self) -> None:
        self.check_options()
        name = normalise_kernel_name(self.kernel_name or self.default_kernel_name())
        text = render_kernel_json(self.build_spec())
        user, prefix = self.location()
        # jupyter_client logs its own "Installed" line at info; keep only its warnings.
        manager_log = self.log.getChild("kernelspec")
        manager_log.setLevel(max(logging.WARNING, self.log.getEffectiveLevel()))
        manager = KernelSpecManager(parent=self, log=manager_log)
        for warning in self.missing_on_this_host():
            self.log.warning("%s", warning)
        package, resources = kernel_resources(self.lang)
        if not resources:
            self.log.info("No logo for kernelspec %s: %s is not installed on this host", name, package)
        target = install_kernel_json(manager, text, name, user=user, prefix=prefix, replace=self.replace,
                                     resources=resources)
        self.log.info(
            "Installed kernelspec %s (%s, provisioner %s) in %s",
            name,
            self.display_name or self.default_display_name(),
            self.provisioner_name(),
            target,
        )

    def check_options(self) -> None:
        if self.lang not in LANGUAGES:
            raise SpecError(f"--language {self.language!r} is not supported; choose python, r or scala")
        try:
            PortRange.parse(self.port_range, min_size=MIN_PORT_RANGE_SIZE)
        except PortRangeError as err:
            raise SpecError(f"--port-range: {err}") from None
        if self.launch_timeout <= 0:
            raise SpecError(f"--launch-timeout must be a positive number of seconds, not {self.launch_timeout}")
        self.check_kernel_class()
        self.location()
        self.check_target()
        if self.tensorflow:
            self.log.warning(TENSORFLOW_IGNORED)

    def check_kernel_class(self) -> None:
        name = self.ipykernel_subclass_name.strip()
        if name == DEFAULT_KERNEL_CLASS:
            return
        if self.lang != "python":
            raise SpecError("--ipykernel-subclass-name applies to Python kernels only")
        if not _DOTTED_NAME.match(name):
            raise SpecError(f"--ipykernel-subclass-name {name!r} is not a dotted 'module.Class' name")
        module_name, _, class_name = name.rpartition(".")
        try:
            found = importlib.util.find_spec(module_name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            # The kernel runs in an image or on another host; this machine need not have it.
            self.log.info("Kernel class %s is not importable here; it must be where the kernel runs", name)
            return
        from ipykernel.ipkernel import IPythonKernel

        try:
            kernel_class = getattr(importlib.import_module(module_name), class_name, None)
        except Exception as err:  # the user's module: any failure is theirs to see, in one line
            raise SpecError(f"--ipykernel-subclass-name {name!r}: importing {module_name} failed: {err}") from None
        if kernel_class is None:
            raise SpecError(f"--ipykernel-subclass-name {name!r}: {module_name} has no {class_name}")
        if not (isinstance(kernel_class, type) and issubclass(kernel_class, IPythonKernel)):
            raise SpecError(f"--ipykernel-subclass-name {name!r} is not a subclass of {DEFAULT_KERNEL_CLASS}")

    def location(self) -> tuple[bool, str | None]:
        """(user, prefix) for jupyter_client, after rejecting contradictory choices."""
        chosen = [flag for flag, on in (("--user", self.user), ("--sys-prefix", self.sys_prefix)) if on]
        if self.prefix:
            chosen.append("--prefix")
        if len(chosen) > 1:
            raise SpecError(f"choose one install location, not {' and '.join(chosen)}")
        if self.sys_prefix:
            return False, sys.prefix
        return self.user, self.prefix or None

    def build_spec(self) -> dict[str, Any]:
        """The whole kernel.json, keys in jupyter_client's order (no empty kernel_protocol_version)."""
        metadata: dict[str, Any] = {}
        if self.lang == "python":
            metadata["debugger"] = True
            # Our Python launcher serves CurveZMQ (KernelManager.transport_encryption); IRkernel and Toree cannot.
            metadata["supported_encryption"] = ["curve"]
        metadata["kernel_provisioner"] = {
            "provisioner_name": self.provisioner_name(),
            "config": self.provisioner_config(),
        }
        return {
            "argv": self.build_argv(),
            "env": self.target_env(),
            "display_name": self.display_name or self.default_display_name(),
            "language": LANGUAGES[self.lang],
            "interrupt_mode": "signal",
            "metadata": metadata,
        }

    def provisioner_config(self) -> dict[str, Any]:
        """Only non-default values, except launch_timeout, which GP always wrote."""
        config = self.target_config()
        if self.authorized_users:
            config["authorized_users"] = _unique(self.authorized_users)
        if self.unauthorized_users:
            config["unauthorized_users"] = _unique(self.unauthorized_users)
        port_range = PortRange.parse(self.port_range, min_size=MIN_PORT_RANGE_SIZE)
        if not port_range.unrestricted:
            config["port_range"] = str(port_range)
        config["launch_timeout"] = self.launch_timeout
        return config

    def kernel_class_name(self) -> str | None:
        """The ``--kernel-class-name`` argument: Python only."""
        return self.ipykernel_subclass_name.strip() if self.lang == "python" else None


class SparkSpecInstaller(BaseSpecInstaller):
    """Targets whose kernels can start a Spark context (ssh, k8s)."""

    spark = Bool(False, help="Start a Spark context in the kernel.").tag(config=True)
    spark_home = Unicode(help="SPARK_HOME of the kernel's machine (default $SPARK_HOME or /opt/spark).").tag(
        config=True
    )
    spark_init_mode = Unicode("lazy", help="With --spark: when to make the Spark context, lazy, eager or none.").tag(
        config=True
    )
    extra_spark_opts = Unicode("", help="With --spark: extra spark-submit options (written to env SPARK_OPTS).").tag(
        config=True
    )

    aliases = spec_aliases(SPARK_ALIASES)
    flags = spec_flags(SPARK_FLAGS)

    @default("spark_home")
    def _spark_home_default(self) -> str:
        return os.environ.get("SPARK_HOME") or "/opt/spark"

    def check_options(self) -> None:
        super().check_options()
        mode = self.spark_init_mode.strip().lower()
        if mode not in SPARK_INIT_MODES:
            raise SpecError(f"--spark-init-mode {self.spark_init_mode!r} is not one of lazy, eager or none")
        if not self.spark:
            if mode != "lazy" or self.extra_spark_opts:
                self.log.warning("--spark-init-mode and --extra-spark-opts are ignored without --spark")

    def spark_mode(self) -> str:
        """The mode the launcher gets: none unless --spark."""
        return self.spark_init_mode.strip().lower() if self.spark else "none"

    def spark_opts(self) -> str:
        return self.extra_spark_opts.strip()

    def target_env(self) -> dict[str, str]:
        if not self.spark:
            return {}
        env = {"SPARK_HOME": self.spark_home}
        opts = self.spark_opts()
        if opts:
            env["SPARK_OPTS"] = opts
        return env

    def spark_suffixes(self) -> tuple[str, str]:
        """(kernel-name suffix, display-name suffix), as GP named Spark kernelspecs."""
        return ("_spark", " (with Spark)") if self.spark else ("", "")


class BaseSpecApp(Application):
    """``jupyter <target>-spec``: only ``install``; anything else prints help and exits 1."""

    @default("log_level")
    def _log_level_default(self) -> int:
        return logging.INFO

    def start(self) -> None:
        if self.subapp is not None:
            self.subapp.start()
            return
        if self.extra_args:
            print(f"Unknown subcommand {self.extra_args[0]!r}; the only subcommand is 'install'.\n", file=sys.stderr)
        self.print_help()
        self.exit(1)


def _unique(values: list[str]) -> list[str]:
    """Keep the first of each repeated value, in the order given."""
    return list(dict.fromkeys(value.strip() for value in values if value.strip()))


def image_tag(version: str) -> str:
    """GP's rule: development builds use the ``dev`` tag, releases their version."""
    return "dev" if "dev" in version else version


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kernelfleet-provisioners")
    except PackageNotFoundError:
        return "dev"


def image_name_from_env() -> str:
    """--image-name default: KF_IMAGE_NAME, then GP's GP_IMAGE_NAME (read when the app is made)."""
    return env_value(("KF_IMAGE_NAME", "GP_IMAGE_NAME")) or ""


def executor_image_name_from_env() -> str:
    return env_value(("KF_EXECUTOR_IMAGE_NAME", "GP_EXECUTOR_IMAGE_NAME")) or ""


def default_image(lang: str) -> str:
    """Our kernel images, named like GP's (``kernel-py``/``-r``/``-scala``); the Scala one (Toree) carries Spark."""
    short = {"python": "py", "r": "r", "scala": "scala"}[lang]
    return f"kernelfleet/kernel-{short}:{image_tag(package_version())}"


def default_spark_image(lang: str) -> str:
    """Our Spark-on-Kubernetes images for Python and R (``kernel-spark-py``/``-r``: a JRE, Spark, the kernel)."""
    short = {"python": "py", "r": "r"}[lang]
    return f"kernelfleet/kernel-spark-{short}:{image_tag(package_version())}"
