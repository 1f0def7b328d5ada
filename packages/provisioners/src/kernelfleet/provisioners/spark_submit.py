"""``spark-submit`` command lines for Spark kernels (Python, R) started on SSH hosts or locally, built without a shell.

Gateway Provisioners' ``run.sh`` ran ``eval exec spark-submit ${SPARK_OPTS} ${IMPERSONATION_OPTS} launch_ipykernel.py
${LAUNCH_OPTS} "$@"``: every variable, the request's ``KERNEL_EXTRA_SPARK_OPTS`` and ``KERNEL_USERNAME`` included,
became shell code. Here the argv is a list of words and nothing is evaluated:

* ``SPARK_OPTS`` and ``LAUNCH_OPTS`` are the operator's (the kernelspec's ``env``, else the server's environment) and
  are split with ``shlex`` as a shell would split quoted words. The expansions GP kernelspecs used are replaced, as
  whole values, by checked values: ``${KERNEL_ID}`` (also ``${KERNEL_ID:-...}``), ``${KERNEL_USERNAME}`` and, as a
  word of its own, ``${KERNEL_EXTRA_SPARK_OPTS}``. Any other ``$`` is refused with a message, never expanded.
* ``KERNEL_EXTRA_SPARK_OPTS`` is the request's: split with ``shlex`` into words, and refused if it names what only the
  operator chooses — the cluster (``--master``, ``--deploy-mode``), the identity (``--proxy-user``, ``--principal``,
  ``--keytab``, Kerberos settings) or the program that runs the launcher (``spark.pyspark.driver.python``,
  ``spark.r.driver.command``). ``request_env`` checks it with ``extra_spark_options`` before anything starts.
* The launcher is the kernelspec's ``INTERPRETER SCRIPT ARGS...`` (``SCRIPT`` a ``.py`` or ``.R`` file, as
  ``jupyter ssh-spec install --spark`` writes it): spark-submit runs ``SCRIPT`` with ``INTERPRETER`` as the driver's
  Python or R, so the kernel's ``spark``/``sc`` are the driver that spark-submit started, on the operator's master.

Called by ``DistributedProvisioner`` (``spark_submit`` in the kernelspec's provisioner config).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kernelfleet.provisioners.kernel_env import KernelEnvError, check_value

EXTRA_NAME = "KERNEL_EXTRA_SPARK_OPTS"
EXTRA_WORDS = frozenset({"${KERNEL_EXTRA_SPARK_OPTS}", "$KERNEL_EXTRA_SPARK_OPTS"})
#: The names GP kernelspecs used inside SPARK_OPTS that every engine replaces.
KERNEL_NAMES = ("KERNEL_ID", "KERNEL_USERNAME")


def expansion(names: Iterable[str]) -> re.Pattern[str]:
    """``${NAME}``, ``${NAME:-default}`` or ``$NAME`` for the given names (longest first, so a prefix never wins)."""
    alternatives = "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True)) or "(?!)"
    return re.compile(rf"\$\{{({alternatives})(?::-[^}}]*)?\}}|\$({alternatives})(?![A-Za-z0-9_])")

#: spark-submit options a request may not give: the operator chooses the cluster and the identity.
REFUSED_OPTIONS = frozenset({"--master", "--deploy-mode", "--proxy-user", "--principal", "--keytab", "--kill",
                             "--status"})
#: ``--conf`` keys (exact, or a prefix ending in ".") a request may not set, for the same reasons, and the program
#: that runs the launcher (which holds the launch token).
REFUSED_CONF = ("spark.master", "spark.submit.deployMode", "spark.kerberos.", "spark.yarn.principal",
                "spark.yarn.keytab", "spark.pyspark.driver.python", "spark.pyspark.python", "spark.r.driver.command",
                "spark.r.command")
PYTHON_SCRIPT = re.compile(r".+\.py\Z")
R_SCRIPT = re.compile(r".+\.[Rr]\Z")


class SparkSubmitError(ValueError):
    """The spark-submit command line cannot be built; the message names the kernel and the setting."""


def _refused_conf(key: str) -> bool:
    return any(key == refused or (refused.endswith(".") and key.startswith(refused)) for refused in REFUSED_CONF)


def extra_spark_options(kernel_id: str, name: str, value: str) -> list[str]:
    """The request's extra spark-submit words, or KernelEnvError naming the option it may not set.

    Used as ``request_env``'s validator for ``KERNEL_EXTRA_SPARK_OPTS`` and again when the argv is built.
    """
    check_value(kernel_id, name, value)
    try:
        words = shlex.split(value)
    except ValueError as err:
        raise KernelEnvError(f"Kernel {kernel_id}: {name} cannot be split into words: {err}") from None
    expect_conf = False
    for word in words:
        if expect_conf:
            expect_conf = False
            if _refused_conf(word.split("=", 1)[0]):
                raise KernelEnvError(f"Kernel {kernel_id}: {name} may not set {word.split('=', 1)[0]}: the "
                                     "kernelspec's SPARK_OPTS (the operator) chooses it")
            continue
        option, has_value, rest = word.partition("=")
        if option in REFUSED_OPTIONS:
            raise KernelEnvError(f"Kernel {kernel_id}: {name} may not give {option}: the kernelspec's SPARK_OPTS "
                                 "(the operator) chooses it")
        if option in ("--conf", "-c"):
            if has_value:
                if _refused_conf(rest.split("=", 1)[0]):
                    raise KernelEnvError(f"Kernel {kernel_id}: {name} may not set {rest.split('=', 1)[0]}: the "
                                         "kernelspec's SPARK_OPTS (the operator) chooses it")
            else:
                expect_conf = True
    return words


def _operator_words(kernel_id: str, setting: str, value: str, values: Mapping[str, str],
                    also: str = "") -> list[str]:
    """Split an operator's option string; replace the GP expansions it may hold by ``values``, refuse any other.
    ``also`` names, for the message, the values beyond the kernel's own (e.g. the server's environment)."""
    try:
        words = shlex.split(value)
    except ValueError as err:
        raise SparkSubmitError(f"Kernel {kernel_id}: {setting} cannot be split into words: {err}") from None
    pattern = expansion(values)
    out = []
    for word in words:
        if word in EXTRA_WORDS:
            out.append(word)
            continue
        replaced = pattern.sub(lambda m: values[m.group(1) or m.group(2)], word)
        if "$" in replaced or "`" in replaced:
            raise SparkSubmitError(
                f"Kernel {kernel_id}: {setting} word {word!r} needs a shell to expand; Kernel Fleet runs "
                f"spark-submit without one and replaces only ${{KERNEL_ID}}, ${{KERNEL_USERNAME}}, "
                f"${{KERNEL_EXTRA_SPARK_OPTS}}{also}"
            )
        out.append(replaced)
    return out


def operator_spark_opts(kernel_id: str, spark_opts: str, values: Mapping[str, str], *, extra: str = "",
                        also: str = "") -> list[str]:
    """An operator's ``SPARK_OPTS`` as spark-submit words, on every engine that runs spark-submit (SSH hosts, local,
    Kubernetes cluster mode): GP's expansions replaced by ``values`` (``_operator_words``), and the request's checked
    ``KERNEL_EXTRA_SPARK_OPTS`` where ``${KERNEL_EXTRA_SPARK_OPTS}`` stands, else at the end."""
    extras = extra_spark_options(kernel_id, EXTRA_NAME, extra) if extra else []
    words: list[str] = []
    placed = False
    for word in _operator_words(kernel_id, "SPARK_OPTS", spark_opts, values, also):
        if word in EXTRA_WORDS:
            words += extras
            placed = True
        else:
            words.append(word)
    if not placed:
        words += extras
    return words


@dataclass(frozen=True)
class SparkSubmit:
    """The operator's side of a Spark kernel's launch: where Spark is and the options the kernelspec declares."""

    spark_home: str
    spark_opts: str = ""
    launch_opts: str = ""


def spark_submit_argv(
    kernel_id: str, launcher_argv: list[str], settings: SparkSubmit, *, username: str, extra: str = "",
    proxy_user: bool = False,
) -> list[str]:
    """``spark-submit [SPARK_OPTS] [extra] [--name KERNEL_ID] [--proxy-user USER] --conf <driver> SCRIPT [LAUNCH_OPTS]
    ARGS``: the words a Spark kernel's launcher is started with. ``username`` is the checked ``KERNEL_USERNAME``."""
    if not settings.spark_home or not posixpath.isabs(settings.spark_home):
        raise SparkSubmitError(f"Kernel {kernel_id}: spark_submit needs SPARK_HOME (an absolute path) in the "
                               f"kernelspec's env, not {settings.spark_home!r}")
    if len(launcher_argv) < 2:
        raise SparkSubmitError(f"Kernel {kernel_id}: spark_submit needs the kernelspec argv INTERPRETER SCRIPT ...")
    interpreter, script, *args = launcher_argv
    if PYTHON_SCRIPT.match(script):
        driver = f"spark.pyspark.driver.python={interpreter}"
    elif R_SCRIPT.match(script):
        driver = f"spark.r.driver.command={interpreter}"
    else:
        raise SparkSubmitError(
            f"Kernel {kernel_id}: spark_submit needs the kernelspec argv INTERPRETER SCRIPT.py|SCRIPT.R ..., not "
            f"{shlex.join(launcher_argv[:3])} (spark-submit runs a file: the Python launcher's is "
            "<launchers-dir>/python/launch_ipykernel.py, written by jupyter ssh-spec install --spark)"
        )
    values = {"KERNEL_ID": kernel_id, "KERNEL_USERNAME": username}
    words = operator_spark_opts(kernel_id, settings.spark_opts, values, extra=extra)
    if not any(w == "--name" or w.startswith("--name=") for w in words):
        words += ["--name", kernel_id]
    if proxy_user:
        words += ["--proxy-user", username]
    launch = _operator_words(kernel_id, "LAUNCH_OPTS", settings.launch_opts, values)
    return [posixpath.join(settings.spark_home, "bin", "spark-submit"), *words, "--conf", driver, script, *launch,
            *args]
