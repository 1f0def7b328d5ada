"""Optional user-namespace variables, as Gateway Provisioners offers: ``spark``/``sc``/``sql`` or a Dask ``client``.

Each is a stand-in that creates the real object on first use (lazy) or in a background thread when the
kernel starts (eager), then replaces itself in the namespace. Creating a SparkSession takes seconds, so
doing it up front would hold back the kernel's first prompt. When the package is missing the kernel still
starts and the variable raises a clear error the moment it is used.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, MutableMapping
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
    elif cluster_type == "dask":
        client = LazyVariable("client", _dask_client, namespace)
        namespace["client"] = client
        added.append(client)
        if spark_mode == "eager":
            _start_eager(client)
    return [v._lv_name for v in added]
