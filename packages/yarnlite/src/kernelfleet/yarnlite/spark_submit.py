"""TEST-ONLY stand-in for Spark's ``spark-submit --master yarn --deploy-mode cluster``: NOT Spark.

Real ``spark-submit`` talks to the ResourceManager over Hadoop IPC (protobuf RPC on port 8032), which nothing on
this machine speaks; this stand-in submits the same application over the RM's REST API instead
(``new-application`` + ``POST /apps``), so the YARN provisioner tests run the kernelspec's real argv through a
real process that behaves like spark-submit in cluster mode with ``spark.yarn.submit.waitAppCompletion=false``:
it submits, prints ``Submitted application <id>`` and exits 0.

What it understands: ``--master yarn``, ``--deploy-mode cluster``, ``--name``, ``--queue``, ``--proxy-user``,
``--conf k=v`` (``spark.yarn.appMasterEnv.*``, ``spark.yarn.queue``, ``spark.yarn.tags``,
``spark.pyspark.python``), ``--properties-file`` (the same keys, Java properties ``k=v`` lines), and ignores
the other options that take a value. The primary resource runs in the AM as ``<python> file.py args`` (the
AM env's ``PYSPARK_PYTHON``, else this interpreter), ``Rscript file.R args``, or, for a jar, as Spark's
ApplicationMaster runs a JVM driver: ``java <Java 17 module options> <--driver-java-options> -cp
$SPARK_HOME/jars/*:jar:<--jars> <--class> args`` (``SPARK_HOME`` being the directory above this script's ``bin``,
as Spark's ``find-spark-home`` does), with the application's ``spark.*`` settings as system properties. There
is no Spark ApplicationMaster and no YARN scheduler backend: the driver's ``spark.master`` is ``local[*]``
(a SparkContext it makes runs its tasks in the AM's JVM, no executor containers). The RM endpoints come from
``YARNLITE_RM`` (comma-separated ``http://host:port``), as yarn-site.xml would say.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import urllib.error
import urllib.request
from typing import Any

APP_MASTER_ENV = "spark.yarn.appMasterEnv."
#: What Spark's YARN client puts on the AM's java command line on Java 17 (Spark 3.3+, ``JavaModuleOptions``).
JAVA_MODULE_OPTIONS = ["-XX:+IgnoreUnrecognizedVMOptions", *(
    f"--add-opens=java.base/{package}=ALL-UNNAMED" for package in (
        "java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net", "java.nio", "java.util",
        "java.util.concurrent", "java.util.concurrent.atomic", "jdk.internal.ref", "sun.nio.ch", "sun.nio.cs",
        "sun.security.action", "sun.util.calendar"))]
VALUE_OPTIONS = {"--master", "--deploy-mode", "--name", "--queue", "--proxy-user", "--conf", "--properties-file",
                 "--class", "--files", "--jars", "--py-files", "--archives", "--driver-memory", "--driver-cores",
                 "--executor-memory", "--executor-cores", "--num-executors", "--keytab", "--principal",
                 "--packages", "--repositories", "--driver-java-options", "--driver-class-path"}


def parse(argv: list[str]) -> tuple[dict[str, str], dict[str, str], str, list[str]]:
    """(options, conf, primary resource, its arguments) from spark-submit's argv."""
    options: dict[str, str] = {}
    conf: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        name = argv[i]
        if name not in VALUE_OPTIONS:
            raise SystemExit(f"spark-submit (yarnlite stand-in): unknown option {name}")
        if i + 1 >= len(argv):
            raise SystemExit(f"spark-submit (yarnlite stand-in): {name} needs a value")
        value = argv[i + 1]
        if name == "--conf":
            key, sep, conf_value = value.partition("=")
            if not sep:
                raise SystemExit(f"spark-submit (yarnlite stand-in): --conf {value!r} is not key=value")
            conf[key] = conf_value
        else:
            options[name] = value
        i += 2
    if i >= len(argv):
        raise SystemExit("spark-submit (yarnlite stand-in): no primary resource")
    if "--properties-file" in options:
        with open(options["--properties-file"], encoding="utf-8") as handle:
            for line in handle:
                key, sep, value = line.rstrip("\n").partition("=")
                if sep and not key.startswith("#"):
                    conf.setdefault(key.strip(), value)
    return options, conf, argv[i], argv[i + 1:]


def submission(app_id: str, argv: list[str]) -> dict[str, Any]:
    """The application-submission-context this spark-submit invocation stands for."""
    options, conf, resource, args = parse(argv)
    if options.get("--master") != "yarn" or options.get("--deploy-mode") != "cluster":
        raise SystemExit("spark-submit (yarnlite stand-in): only --master yarn --deploy-mode cluster is supported")
    am_env = {k.removeprefix(APP_MASTER_ENV): v for k, v in conf.items() if k.startswith(APP_MASTER_ENV)}
    if resource.endswith(".py"):
        python = am_env.get("PYSPARK_PYTHON") or conf.get("spark.pyspark.python") or sys.executable
        command = [python, resource, *args]
    elif resource.endswith(".R"):
        command = ["Rscript", resource, *args]
    else:
        command = [*jvm_driver(options, conf, resource), *args]
    tags = [t for t in conf.get("spark.yarn.tags", "").split(",") if t]
    user = options.get("--proxy-user") or os.environ.get("USER") or "dr.who"
    return {
        "application-id": app_id, "application-name": options.get("--name", resource),
        "queue": options.get("--queue") or conf.get("spark.yarn.queue") or "default", "application-type": "SPARK",
        "application-tags": {"tag": tags}, "resource": {"memory": 1024, "vCores": 1},
        "am-container-spec": {"environment": {"entry": [{"key": k, "value": v} for k, v in am_env.items()]},
                              "commands": {"command": shlex.join(command)}},
        "_user": user,
    }


def jvm_driver(options: dict[str, str], conf: dict[str, str], resource: str) -> list[str]:
    """The AM's JVM command for a jar application, up to its main class."""
    spark_home = os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[0])))
    jars = [j for j in options.get("--jars", "").split(",") if j]
    # Spark's AM puts Spark's own jars first; the application's come after them (not user-class-path-first).
    classpath = [os.path.join(spark_home, "jars", "*"), resource, *jars]
    properties = {k: v for k, v in conf.items() if k.startswith("spark.") and not k.startswith(APP_MASTER_ENV)}
    # No Spark ApplicationMaster, no YARN scheduler backend: the driver's own master is local.
    properties.update({"spark.master": "local[*]", "spark.app.name": options.get("--name", resource)})
    java_options = shlex.split(options.get("--driver-java-options") or conf.get("spark.driver.extraJavaOptions", ""))
    system_properties = [f"-D{k}={v}" for k, v in sorted(properties.items())]
    return ["java", *JAVA_MODULE_OPTIONS, *java_options, *system_properties, "-cp", ":".join(classpath),
            options.get("--class", "")]


def _request(endpoints: list[str], method: str, path: str, body: dict[str, Any] | None, user: str) -> Any:
    last = ""
    for base in endpoints:
        url = f"{base}/ws/v1/cluster{path}?user.name={user}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # follows the standby's 307
                text = response.read()
                return json.loads(text) if text else None
        except (urllib.error.URLError, OSError) as err:
            last = f"{base}: {err}"
    raise SystemExit(f"spark-submit (yarnlite stand-in): no ResourceManager answered: {last}")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    endpoints = [e.strip().rstrip("/") for e in os.environ.get("YARNLITE_RM", "").split(",") if e.strip()]
    if not endpoints:
        raise SystemExit("spark-submit (yarnlite stand-in): YARNLITE_RM names no ResourceManager")
    probe = submission("probe", args)  # argument errors before anything is asked of the RM
    user = probe.pop("_user")
    app_id = _request(endpoints, "POST", "/apps/new-application", None, user)["application-id"]
    context = submission(app_id, args)
    context.pop("_user")
    _request(endpoints, "POST", "/apps", context, user)
    print(f"INFO Client: Submitted application {app_id}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
