"""``jupyter yarn-spec install``: kernelspecs for ``yarn-provisioner`` (Spark on YARN, cluster mode).

Writes what Gateway Provisioners' command meant to write (its 0.5.0 leaves ``${language}`` and other templates
unexpanded and drops ``--yarn-endpoint``): the endpoints and switches in the provisioner's config, and an argv
that is the spark-submit command itself — no ``run.sh``, no ``eval`` — with ``--name {kernel_id}``. Python and R
submit the launcher script; Scala submits our Toree launcher jar (``--class kernelfleet.toree.ToreeLauncher``)
with the Toree assembly in ``--jars``, both as ``jupyter image-bootstrap install`` put them on this host (where
spark-submit runs and uploads them from). ``--dask`` writes a Python kernelspec submitted through the RM's REST API
(``submission: rest``: the launch token in the AM's environment) whose kernel starts its own Dask cluster on YARN
from ``DASK_OPTS`` (``yarn.dask``); GP's ``dask-yarn submit`` would put the kernel's environment on a command line.
"""

from __future__ import annotations

import os
import posixpath
import shlex
import sys
from typing import Any

from traitlets import Bool, Unicode

from kernelfleet.protocol.contract import CLUSTER_TYPE_INPUT
from kernelfleet.provisioners.cli.base import (
    LANGUAGE_TITLES,
    SPARK_ALIASES,
    BaseSpecApp,
    SparkSpecInstaller,
    SpecError,
    spec_aliases,
    spec_flags,
)
from kernelfleet.provisioners.cli.ssh import DEFAULT_LAUNCHERS_DIR
from kernelfleet.provisioners.container_argv import launcher_args
from kernelfleet.provisioners.yarn.client import normalise_endpoint
from kernelfleet.provisioners.yarn.dask import DASK_OPTS, dask_opts
from kernelfleet.provisioners.yarn.submission import (
    TOREE_ASSEMBLY,
    TOREE_DRIVER_JAVA_OPTIONS,
    TOREE_LAUNCHER_CLASS,
    TOREE_LAUNCHER_JAR,
)

#: GP's DASK_OPTS, less its ${extra_dask_opts}: the Dask application is named after the kernel, its workers run
#: with the kernel's interpreter, skein gets fresh TLS credentials, the scheduler runs in a YARN container.
DASK_OPTS_TEMPLATE = ("--name ${KERNEL_ID:-ERROR__NO__KERNEL_ID} --environment python://%s "
                      "--temporary-security-credentials --deploy-mode remote")


class YarnSpecInstaller(SparkSpecInstaller):
    """Install a kernelspec whose kernel is a YARN application: submitted with spark-submit in cluster mode, or with
    ``--dask`` through the RM's REST API as a Dask client."""

    name = "yarn-spec"
    description = "Install a kernelspec whose kernel runs as a YARN application (yarn-provisioner)."

    yarn_endpoint = Unicode("", help="The ResourceManager's REST endpoint, e.g. http://rm1:8088/ws/v1/cluster "
                            "(default: the provisioner's, from GP_YARN_ENDPOINT).").tag(config=True)
    alt_yarn_endpoint = Unicode("", help="The HA partner RM's endpoint.").tag(config=True)
    yarn_endpoint_security_enabled = Bool(False, help="The RM requires Kerberos (SPNEGO).").tag(config=True)
    impersonation_enabled = Bool(False, help="Run kernels as the requesting user (--proxy-user).").tag(config=True)
    python_root = Unicode("/opt/conda", help="Where Python is installed on the YARN nodes (PYSPARK_PYTHON is "
                          "<python-root>/bin/python).").tag(config=True)
    launchers_dir = Unicode(DEFAULT_LAUNCHERS_DIR, help="Where the launchers are installed on this host "
                            "(spark-submit ships the file to the AM).").tag(config=True)
    dask = Bool(False, help="A Python kernel that is a Dask client on YARN: submitted through the RM's REST API, its "
                "`client` a dask.distributed Client of a dask_yarn.YarnCluster it starts itself (DASK_OPTS in env; "
                "docs/yarn.md).").tag(config=True)
    extra_dask_opts = Unicode("", help="With --dask: more `dask-yarn submit` options for the kernel's Dask cluster "
                              "(--worker-count 4 --worker-memory '4 GiB' --queue analytics ...; written to env "
                              "DASK_OPTS).").tag(config=True)

    aliases = spec_aliases(SPARK_ALIASES, {
        "yarn-endpoint": "YarnSpecInstaller.yarn_endpoint",
        "alt-yarn-endpoint": "YarnSpecInstaller.alt_yarn_endpoint",
        "python-root": "YarnSpecInstaller.python_root",
        "launchers-dir": "YarnSpecInstaller.launchers_dir",
        "extra-dask-opts": "YarnSpecInstaller.extra_dask_opts",
    })
    flags = spec_flags({
        "yarn-endpoint-security-enabled": ({"YarnSpecInstaller": {"yarn_endpoint_security_enabled": True}},
                                           "The RM requires Kerberos (SPNEGO)."),
        "impersonation-enabled": ({"YarnSpecInstaller": {"impersonation_enabled": True}},
                                  "Run kernels as the requesting user (spark-submit --proxy-user)."),
        "dask": ({"YarnSpecInstaller": {"dask": True}}, "A Python kernel that starts a Dask cluster on YARN "
                 "(REST submission; the kernel is the Dask client)."),
        "spark": ({"SparkSpecInstaller": {"spark": True}},
                  "Accepted for GP compatibility: YARN kernels use Spark (--dask ones excepted)."),
    })

    def check_target(self) -> None:
        self.spark = not self.dask  # a YARN kernel is a Spark application, or a Dask client
        if self.dask:
            self.check_dask()
        elif self.extra_dask_opts:
            raise SpecError("--extra-dask-opts applies to --dask kernelspecs only")
        for flag, value in (("--yarn-endpoint", self.yarn_endpoint), ("--alt-yarn-endpoint", self.alt_yarn_endpoint)):
            if value:
                try:
                    normalise_endpoint(value)
                except ValueError as err:
                    raise SpecError(f"{flag}: {err}") from None
        if self.alt_yarn_endpoint and not self.yarn_endpoint:
            raise SpecError("--alt-yarn-endpoint needs --yarn-endpoint")
        for flag, path in (("--spark-home", self.spark_home), ("--python-root", self.python_root),
                           ("--launchers-dir", self.launchers_dir)):
            if not posixpath.isabs(path):
                raise SpecError(f"{flag} {path!r} must be an absolute path")
        try:
            shlex.split(self.extra_spark_opts)
        except ValueError as err:
            raise SpecError(f"--extra-spark-opts cannot be split into options: {err}") from None
        if self.lang == "scala":
            self.toree_jars()

    def check_dask(self) -> None:
        """A Dask kernel is Python, starts no Spark context, and its options are dask-yarn submit's."""
        if self.lang != "python":
            raise SpecError(f"--dask kernels are Python kernels, not --language {self.language}")
        if self.extra_spark_opts or self.spark_init_mode.strip().lower() != "lazy":
            raise SpecError("--extra-spark-opts and --spark-init-mode do not apply to --dask kernelspecs (use "
                            "--extra-dask-opts)")
        try:
            dask_opts(shlex.split(self.dask_opts_text()))
        except ValueError as err:
            raise SpecError(f"--extra-dask-opts: {err}") from None

    def dask_opts_text(self) -> str:
        """The kernelspec's DASK_OPTS: GP's, ``--extra-dask-opts`` last (its later options win)."""
        python = shlex.quote(posixpath.join(self.python_root, "bin", "python"))
        return " ".join(filter(None, [DASK_OPTS_TEMPLATE % python, self.extra_dask_opts.strip()]))

    def toree_jars(self) -> tuple[str, str]:
        """(our launcher jar, the Toree assembly) in ``<launchers-dir>/scala/lib`` of this host: spark-submit runs
        here and uploads both, and the assembly's versioned name is only known by looking."""
        lib = posixpath.join(self.launchers_dir, "scala", "lib")
        try:
            names = os.listdir(lib)
        except OSError:
            names = []
        assemblies = sorted(name for name in names if TOREE_ASSEMBLY.fullmatch(name))
        if TOREE_LAUNCHER_JAR not in names or not assemblies:
            raise SpecError(f"--language scala needs {TOREE_LAUNCHER_JAR} and toree-assembly-*.jar in {lib} on this "
                            "host (spark-submit uploads them from here): run jupyter image-bootstrap install "
                            "--languages scala, or give --launchers-dir")
        return posixpath.join(lib, TOREE_LAUNCHER_JAR), posixpath.join(lib, assemblies[-1])

    def provisioner_name(self) -> str:
        return "yarn-provisioner"

    def default_kernel_name(self) -> str:
        return "yarn_dask_python" if self.dask else f"yarn_spark_{self.lang}"

    def default_display_name(self) -> str:
        if self.dask:
            return "Dask Python (YARN Cluster Mode)"
        return f"Spark {LANGUAGE_TITLES[self.lang]} (YARN Cluster Mode)"

    def build_argv(self) -> list[str]:
        python = posixpath.join(self.python_root, "bin", "python")
        if self.dask:  # the AM command of a REST submission: the launcher itself, with the Dask namespace
            launcher = posixpath.join(self.launchers_dir, "python", "launch_ipykernel.py")
            return [python, launcher, *launcher_args(kernel_class_name=self.kernel_class_name()),
                    str(CLUSTER_TYPE_INPUT.option), "dask"]
        submit = [posixpath.join(self.spark_home, "bin", "spark-submit"), "--master", "yarn", "--deploy-mode",
                  "cluster", "--name", "{kernel_id}", "--conf", "spark.yarn.submit.waitAppCompletion=false",
                  "--conf", f"spark.yarn.appMasterEnv.PATH={posixpath.join(self.python_root, 'bin')}:/usr/bin:/bin"]
        if self.lang == "python":
            submit += ["--conf", f"spark.yarn.appMasterEnv.PYSPARK_PYTHON={python}"]
            launcher = posixpath.join(self.launchers_dir, "python", "launch_ipykernel.py")
            args = launcher_args(kernel_class_name=self.kernel_class_name(), spark_init_mode=self.spark_mode())
        elif self.lang == "r":
            launcher = posixpath.join(self.launchers_dir, "r", "launch_IRkernel.R")
            args = launcher_args(spark_init_mode=self.spark_mode())
        else:  # the launcher jar is the app's primary resource; Toree runs in its JVM (the AM: the Spark driver)
            launcher, assembly = self.toree_jars()
            submit += ["--driver-java-options", TOREE_DRIVER_JAVA_OPTIONS, "--jars", assembly,
                       "--class", TOREE_LAUNCHER_CLASS]
            args = launcher_args(spark_init_mode=self.spark_mode())
        return [*submit, *shlex.split(self.extra_spark_opts), launcher, *args]

    def target_env(self) -> dict[str, str]:
        if self.dask:
            return {DASK_OPTS: self.dask_opts_text()}
        env = {"SPARK_HOME": self.spark_home}
        if self.lang == "python":
            env["PYSPARK_PYTHON"] = posixpath.join(self.python_root, "bin", "python")
        return env

    def target_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"submission": "rest"} if self.dask else {}
        if self.yarn_endpoint:
            config["yarn_endpoint"] = normalise_endpoint(self.yarn_endpoint)
        if self.alt_yarn_endpoint:
            config["alt_yarn_endpoint"] = normalise_endpoint(self.alt_yarn_endpoint)
        if self.yarn_endpoint_security_enabled:
            config["yarn_endpoint_security_enabled"] = True
        if self.impersonation_enabled:
            config["impersonation_enabled"] = True
        return config


class YarnSpecApp(BaseSpecApp):
    """``jupyter yarn-spec``."""

    name = "jupyter-yarn-spec"
    description = "Kernelspecs for kernels that run as YARN applications (yarn-provisioner)."
    subcommands = {"install": (YarnSpecInstaller, YarnSpecInstaller.description)}


def main() -> None:
    YarnSpecApp.launch_instance()


if __name__ == "__main__":
    sys.exit(main())
