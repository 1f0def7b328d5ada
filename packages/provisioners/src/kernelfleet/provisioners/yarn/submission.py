"""Pure builders for a YARN launch: the REST application-submission-context, the spark-submit argv, the
properties file that carries the launch environment to the AM, and the error texts made from an app's report.

``YarnProvisioner`` calls them; nothing here does I/O, so each is tested without a cluster.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

#: GP's run.sh and SPARK_OPTS name these; ${NAME}, ${NAME:-default} and $NAME are expanded, nothing else.
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
#: The one kernelspec word whose value is itself a list of spark-submit options (GP's request-settable extra).
OPTIONS_WORD = "${KERNEL_EXTRA_SPARK_OPTS}"
APP_MASTER_ENV = "spark.yarn.appMasterEnv."
#: The Scala launcher: our jar and its main class, beside Apache Toree's assembly (GP's own launcher jar and class
#: are recognised in GP-written kernelspecs).
TOREE_LAUNCHER_JAR = "kernelfleet-toree-launcher.jar"
TOREE_LAUNCHER_CLASS = "kernelfleet.toree.ToreeLauncher"
TOREE_ASSEMBLY = re.compile(r"toree-assembly-.*\.jar")
GP_TOREE_LAUNCHER = re.compile(r"toree-launcher.*\.jar")
GP_TOREE_LAUNCHER_CLASS = "launcher.ToreeLauncher"
#: Toree's magics read jar manifests through java.util.jar internals that Java 17 closes (launchers/scala/run.sh gives
#: the same option); in cluster mode --driver-java-options reach the AM's JVM.
TOREE_DRIVER_JAVA_OPTIONS = "--add-opens=java.base/java.util.jar=ALL-UNNAMED"
KERNEL_TAG_PREFIX = "kf-kernel-"
SERVER_TAG_PREFIX = "kf-server-"


#: Kernelspec env values that are templates of options (GP's run.sh expands them): read as the kernelspec wrote them.
OPTION_TEMPLATES = ("SPARK_OPTS", "__TOREE_SPARK_OPTS__", "TOREE_OPTS", "__TOREE_OPTS__", "LAUNCH_OPTS", "DASK_OPTS",
                    "DASK_YARN_EXE")


def with_templates(env: Mapping[str, str], spec_env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the kernelspec's option templates (``OPTION_TEMPLATES``) as written in its ``env``.

    jupyter_client has already substituted ``${NAME}`` in the kernelspec's env values from the launch environment,
    request values included, so ``env``'s ``SPARK_OPTS`` may hold a request's ``KERNEL_USERNAME`` as several words.
    Splitting the template first and expanding each word afterwards (``expand_options``) needs the template."""
    return {**env, **{name: spec_env[name] for name in OPTION_TEMPLATES if name in spec_env}}


def expand(word: str, env: Mapping[str, str]) -> str:
    """One word with its ``$NAME`` / ``${NAME}`` / ``${NAME:-default}`` replaced; values are never split."""
    def value(match: re.Match[str]) -> str:
        name = match[1] or match[3]
        found = env.get(name, "")
        return found if found or match[2] is None else match[2]
    return VARIABLE.sub(value, word)


def expand_options(template: str, env: Mapping[str, str]) -> list[str]:
    """A kernelspec's ``SPARK_OPTS``-style string as argv words, without a shell.

    The template (the operator's) is split into words first, then each word is expanded as one word, so a
    request value can never become a second option. The only exception is a word that is exactly
    ``${KERNEL_EXTRA_SPARK_OPTS}``: the kernelspec declares that it holds options, so its value is split with
    shell quoting rules (and nothing else: no expansion, no command substitution).
    """
    words: list[str] = []
    for word in shlex.split(template):
        if word == OPTIONS_WORD:
            words.extend(shlex.split(env.get("KERNEL_EXTRA_SPARK_OPTS", "")))
        else:
            words.append(expand(word, env))
    return words


def is_gp_run_sh(argv: Sequence[str]) -> bool:
    """GP's YARN kernelspecs start ``<kernel dir>/bin/run.sh``, which ``eval``s SPARK_OPTS; we never run it."""
    return bool(argv) and argv[0].endswith("/bin/run.sh")


def gp_spark_submit_argv(argv: Sequence[str], env: Mapping[str, str], proxy_user: str | None,
                         lib_files: Sequence[str] = ()) -> list[str]:
    """What GP's ``run.sh`` means, as an argv, by the kernel's language (``KERNEL_LANGUAGE``, the kernelspec's):

    * Python and R: ``$SPARK_HOME/bin/spark-submit $SPARK_OPTS [--proxy-user U] <kernel dir>/scripts/<launcher>
      $LAUNCH_OPTS <argv[1:]>`` (``launch_ipykernel.py``, ``launch_IRkernel.R``; the file there is taken as it is).
    * Scala (GP's ``yarn_spark_scala``): ``spark-submit ${SPARK_OPTS:-$__TOREE_SPARK_OPTS__} [--proxy-user U] --jars
      lib/toree-assembly-*.jar --class <class> <launcher jar> ${TOREE_OPTS:-$__TOREE_OPTS__} $LAUNCH_OPTS
      <argv[1:]>``, the jars among ``lib_files`` (the names in ``<kernel dir>/lib``, listed by the caller): our
      ``kernelfleet-toree-launcher.jar`` when it is there, else GP's ``toree-launcher*.jar``
      (``launcher.ToreeLauncher``, a protocol-v1 launcher the broker accepts only with ``accept_v1_reports``). When
      the options give no driver Java options, ``--driver-java-options`` gets what Toree needs on Java 17
      (``TOREE_DRIVER_JAVA_OPTIONS``; without it Toree's first cell never answers there).
    """
    spark_home = env.get("SPARK_HOME", "")
    if not spark_home:
        raise ValueError("SPARK_HOME is not set in the kernelspec's env (GP's run.sh requires it)")
    kernel_dir = os.path.dirname(os.path.dirname(argv[0]))
    language = env.get("KERNEL_LANGUAGE", "python").lower()
    spark_opts = env.get("SPARK_OPTS", "") or (env.get("__TOREE_SPARK_OPTS__", "") if language == "scala" else "")
    words = [os.path.join(spark_home, "bin", "spark-submit"), *expand_options(spark_opts, env)]
    if proxy_user:
        words += ["--proxy-user", proxy_user]
    if language == "scala":
        toree_opts = env.get("TOREE_OPTS", "") or env.get("__TOREE_OPTS__", "")
        app = [*gp_toree_application(os.path.join(kernel_dir, "lib"), lib_files), *expand_options(toree_opts, env)]
        if not any(w == "--driver-java-options" or w.startswith("spark.driver.extraJavaOptions=") for w in words):
            app = ["--driver-java-options", TOREE_DRIVER_JAVA_OPTIONS, *app]
    else:
        script = "launch_IRkernel.R" if language == "r" else "launch_ipykernel.py"
        app = [os.path.join(kernel_dir, "scripts", script)]
    return [*words, *app, *expand_options(env.get("LAUNCH_OPTS", ""), env), *argv[1:]]


def gp_toree_application(lib: str, lib_files: Sequence[str]) -> list[str]:
    """``--jars <assembly> --class <class> <launcher jar>`` from the names in a GP Scala kernelspec's ``lib``."""
    assembly = sorted(name for name in lib_files if TOREE_ASSEMBLY.fullmatch(name))
    if TOREE_LAUNCHER_JAR in lib_files:
        launcher, main_class = TOREE_LAUNCHER_JAR, TOREE_LAUNCHER_CLASS
    else:
        gp_jars = sorted(name for name in lib_files if GP_TOREE_LAUNCHER.fullmatch(name))
        launcher, main_class = (gp_jars[0] if gp_jars else ""), GP_TOREE_LAUNCHER_CLASS
    if not assembly or not launcher:
        raise ValueError(f"{lib} must hold toree-assembly-*.jar and {TOREE_LAUNCHER_JAR} (or GP's "
                         "toree-launcher*.jar), as GP's run.sh requires")
    return ["--jars", os.path.join(lib, assembly[0]), "--class", main_class, os.path.join(lib, launcher)]


def with_spark_options(argv: Sequence[str], properties_file: str | None, proxy_user: str | None) -> list[str]:
    """``argv`` (a spark-submit command) with ``--properties-file`` and ``--proxy-user`` right after the program,
    where spark-submit reads options; a program that is not spark-submit is left as it is."""
    if not argv or os.path.basename(argv[0]) != "spark-submit":
        return list(argv)
    extra: list[str] = []
    if properties_file:
        extra += ["--properties-file", properties_file]
    if proxy_user and "--proxy-user" not in argv:
        extra += ["--proxy-user", proxy_user]
    return [argv[0], *extra, *argv[1:]]


def properties_text(am_env: Mapping[str, str], tags: Sequence[str] = ()) -> str:
    """A Spark properties file that puts ``am_env`` into the AM's environment (``spark.yarn.appMasterEnv.*``) and
    ``tags`` on the application (``spark.yarn.tags``: the orphan sweep finds a server's apps by them).

    The launch token travels in this file (mode 0600, removed once the app is submitted), never on the command
    line. Java properties escaping for the characters our values can hold. A ``--conf spark.yarn.tags`` of the
    kernelspec wins over the file, as spark-submit gives ``--conf`` precedence.
    """
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace("=", "\\=").replace(":", "\\:")
    lines = [f"{APP_MASTER_ENV}{name}={escape(value)}\n" for name, value in sorted(am_env.items())]
    if tags:
        lines.append(f"spark.yarn.tags={escape(','.join(tags))}\n")
    return "".join(lines)


def app_tags(kernel_id: str, server_id: str) -> list[str]:
    """Tags that find a kernel's app again (YARN lower-cases tags; kernel ids are matched lower-cased too)."""
    tags = [f"{KERNEL_TAG_PREFIX}{kernel_id}".lower()]
    if server_id:
        tags.append(f"{SERVER_TAG_PREFIX}{server_id}".lower())
    return tags


def submission_context(*, app_id: str, name: str, queue: str, argv: Sequence[str], env: Mapping[str, str],
                       tags: Sequence[str], memory_mb: int, vcores: int, app_type: str = "KERNELFLEET",
                       ) -> dict[str, Any]:
    """``POST /ws/v1/cluster/apps``: the AM runs ``argv`` (quoted word by word: the NodeManager runs AM commands
    with bash), with ``env`` as its container environment, one attempt (a kernel is not re-run behind its user's
    back)."""
    return {
        "application-id": app_id,
        "application-name": name,
        "queue": queue,
        "application-type": app_type,
        "max-app-attempts": 1,
        "unmanaged-AM": False,
        "keep-containers-across-application-attempts": False,
        "application-tags": {"tag": list(tags)},
        "resource": {"memory": memory_mb, "vCores": vcores},
        "am-container-spec": {
            "environment": {"entry": [{"key": k, "value": v} for k, v in sorted(env.items())]},
            "commands": {"command": shlex.join(argv)},
        },
    }


def pick_app(apps: Sequence[Mapping[str, Any]], kernel_id: str, since_ms: int) -> Mapping[str, Any] | None:
    """The kernel's app among ``GET /apps`` results: named after the kernel id (or tagged so), started at or after
    this launch; the newest when a restart left several."""
    tag = f"{KERNEL_TAG_PREFIX}{kernel_id}".lower()
    mine = [a for a in apps if int(a.get("startedTime") or 0) >= since_ms
            and (a.get("name") == kernel_id or tag in str(a.get("applicationTags") or "").split(","))]
    return max(mine, key=lambda a: int(a.get("startedTime") or 0), default=None)


def am_host(app: Mapping[str, Any]) -> str:
    """The AM's host from ``amHostHttpAddress`` (``host:port``), '' until the AM is placed."""
    address = str(app.get("amHostHttpAddress") or "")
    return address.rsplit(":", 1)[0] if ":" in address else address


def describe_end(app: Mapping[str, Any]) -> str:
    """Why an app ended, in YARN's words: its state, final status and diagnostics."""
    diagnostics = str(app.get("diagnostics") or "").strip() or "no diagnostics"
    return (f"YARN application {app.get('id')} is {app.get('state')} (final status {app.get('finalStatus')}, "
            f"queue {app.get('queue')}): {diagnostics}")


def describe_queue_wait(app: Mapping[str, Any], seconds: float) -> str:
    """An app that stayed ACCEPTED too long: its queue and the RM's reason."""
    diagnostics = str(app.get("diagnostics") or "").strip() or "the ResourceManager gave no reason"
    return (f"YARN application {app.get('id')} stayed ACCEPTED in queue {app.get('queue')!r} for more than "
            f"{seconds:g}s (queue_timeout): {diagnostics}")
