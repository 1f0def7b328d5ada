"""Optional user-namespace variables, as Gateway Provisioners offers: ``spark``/``sc``/``sql`` or a Dask ``client``.

A Dask kernel on YARN (``KF_DASK_YARN=1``, set by yarn-provisioner from the kernelspec's ``DASK_OPTS``) is the
client of a Dask cluster it starts itself, as GP's was: ``cluster`` is a ``dask_yarn.YarnCluster`` configured by
dask-yarn's own ``DASK_YARN__*`` variables, and ``client`` a ``dask.distributed.Client`` of it.

Each is a stand-in that creates the real object on first use (lazy) or in a background thread when the
kernel starts (eager), then replaces itself in the namespace. Creating a SparkSession takes seconds, so
doing it up front would hold back the kernel's first prompt. When the package is missing the kernel still
starts and the variable raises a clear error the moment it is used.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any


class NamespaceVariableError(RuntimeError):
    """A launcher-provided variable could not be created; the message says why and what to install."""


class LazyVariable:
    """Stands in for ``name`` until first use; attribute access, calls and repr all go to the real object."""

    def __init__(self, name: str, factory: Callable[[], Any], namespace: MutableMapping[str, Any]) -> None:
        object.__setattr__(self, "_lv_name", name)
        object.__setattr__(self, "_lv_factory", factory)
        object.__setattr__(self, "_lv_namespace", namespace)
        object.__setattr__(self, "_lv_lock", threading.Lock())
        object.__setattr__(self, "_lv_value", None)
        object.__setattr__(self, "_lv_done", False)

    def _lv_resolve(self) -> Any:
        with self._lv_lock:
            if not self._lv_done:
                value = self._lv_factory()
                object.__setattr__(self, "_lv_value", value)
                object.__setattr__(self, "_lv_done", True)
                if self._lv_namespace.get(self._lv_name) is self:
                    self._lv_namespace[self._lv_name] = value
            return self._lv_value

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._lv_resolve(), attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(self._lv_resolve(), attr, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._lv_resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return repr(self._lv_resolve())

    def __str__(self) -> str:
        return str(self._lv_resolve())

    def __dir__(self) -> list[str]:
        return dir(self._lv_resolve())


def _spark_session(mode: str) -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise NamespaceVariableError(
            f"`spark` is not available: pyspark is not installed in this kernel's environment "
            f"(KERNEL_SPARK_CONTEXT_INIT_MODE={mode}); install pyspark in the kernel image to use it"
        ) from None
    return SparkSession.builder.getOrCreate()


def _dask_client() -> Any:
    try:
        from dask.distributed import Client
    except ImportError:
        raise NamespaceVariableError(
            "`client` is not available: dask.distributed is not installed in this kernel's environment "
            "(KERNEL_CLUSTER_TYPE=dask); install 'dask[distributed]' in the kernel image to use it"
        ) from None
    # No address: dask's own configuration (DASK_SCHEDULER_ADDRESS) decides, else a local cluster.
    return Client()


#: The kernel is a Dask client on YARN (yarn-provisioner's Dask kernels); see yarn/dask.py there.
DASK_YARN_MARKER = "KF_DASK_YARN"
TEMPORARY_CREDENTIALS = "KF_DASK_YARN_TEMPORARY_CREDENTIALS"


def dask_yarn_missing(has_module: Callable[[str], bool], which: Callable[[str], str | None],
                      env: Mapping[str, str]) -> list[str]:
    """What a kernel lacks to start a Dask cluster on YARN, each with how to get it (empty: nothing).

    dask_yarn drives YARN through skein, whose Java driver speaks Hadoop IPC: it runs ``yarn classpath --glob``
    (Hadoop's client, configured by HADOOP_CONF_DIR) and ``java``. Pure: the caller passes the lookups.
    """
    missing: list[str] = []
    if not has_module("distributed"):
        missing.append("dask.distributed is not installed (pip install 'dask[distributed]')")
    if not has_module("dask_yarn"):
        missing.append("dask_yarn is not installed (pip install dask-yarn, which brings skein)")
    if not which("yarn"):
        missing.append("Hadoop's `yarn` command is not on PATH (skein runs `yarn classpath`: put $HADOOP_HOME/bin on "
                       "PATH, with the cluster's configuration in HADOOP_CONF_DIR)")
    java_home = env.get("JAVA_HOME")
    if not (which(f"{java_home}/bin/java") if java_home else which("java")):
        missing.append("no Java runtime (skein's driver is Java: set JAVA_HOME or put java on PATH)")
    return missing


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _yarn_cluster() -> Any:
    missing = dask_yarn_missing(_has_module, shutil.which, os.environ)
    if missing:
        raise NamespaceVariableError(
            f"a Dask cluster on YARN cannot be started from this kernel ({DASK_YARN_MARKER}=1): "
            + "; ".join(missing) + f" — in the kernel's environment ({sys.prefix})"
        )
    from dask_yarn import YarnCluster

    skein_client = None
    if os.environ.get(TEMPORARY_CREDENTIALS) == "1":  # dask-yarn submit --temporary-security-credentials
        import skein

        skein_client = skein.Client(security=skein.Security.new_credentials())
    # Everything else (environment, name, queue, workers, tags) is dask-yarn's configuration: DASK_YARN__* values.
    return YarnCluster(skein_client=skein_client)


def _start_eager(variable: LazyVariable) -> None:
    def run() -> None:
        try:
            variable._lv_resolve()
        except Exception as err:  # reported now, and raised again when the variable is used
            print(f"kernelfleet-launcher: {err}", file=sys.stderr)

    threading.Thread(target=run, name="kernelfleet-namespace-init", daemon=True).start()


def _install_spark_job_cancel(spark: LazyVariable) -> None:
    """SIGUSR2 (sent by the launcher with each interrupt) cancels running Spark jobs, as GP's launcher did."""

    def cancel() -> None:
        try:
            spark._lv_value.sparkContext.cancelAllJobs()
        except Exception as err:
            print(f"kernelfleet-launcher: cancelling Spark jobs failed: {err}", file=sys.stderr)

    def on_usr2(signum: int, frame: object) -> None:
        # py4j calls from a signal handler could deadlock the main thread; hand it to a thread.
        if spark._lv_done:
            threading.Thread(target=cancel, daemon=True).start()

    signal.signal(signal.SIGUSR2, on_usr2)


def install(namespace: MutableMapping[str, Any], *, spark_mode: str, cluster_type: str) -> list[str]:
    """Put the stand-ins into ``namespace``; returns the names added."""
    added: list[LazyVariable] = []
    if cluster_type == "spark" and spark_mode in ("lazy", "eager"):
        spark = LazyVariable("spark", lambda: _spark_session(spark_mode), namespace)
        sc = LazyVariable("sc", lambda: spark._lv_resolve().sparkContext, namespace)
        sql = LazyVariable("sql", lambda: spark._lv_resolve().sql, namespace)  # GP's `sql("SELECT ...")`
        namespace.update(spark=spark, sc=sc, sql=sql)
        _install_spark_job_cancel(spark)
        added += [spark, sc, sql]
        if spark_mode == "eager":
            _start_eager(spark)
    elif cluster_type == "dask" and os.environ.get(DASK_YARN_MARKER) == "1":
        cluster = LazyVariable("cluster", _yarn_cluster, namespace)  # GP's name for it

        def yarn_client() -> Any:
            started = cluster._lv_resolve()  # first: its error names everything missing
            from dask.distributed import Client

            return Client(started)

        client = LazyVariable("client", yarn_client, namespace)
        namespace.update(cluster=cluster, client=client)
        added += [cluster, client]
        if spark_mode == "eager":
            _start_eager(client)
    elif cluster_type == "dask":
        client = LazyVariable("client", _dask_client, namespace)
        namespace["client"] = client
        added.append(client)
        if spark_mode == "eager":
            _start_eager(client)
    return [v._lv_name for v in added]
