"""The optional Spark/Dask namespace, with a real pyspark (and its JVM) and a genuinely missing dask."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from typing import Any

import pytest
from kf_testing import interrupted_reply, start_busy_cell
from launcher_support import Launch, Launcher

# A small local Spark: one core, no web UI, loopback only, so two JVMs fit a 2-core CI machine.
SPARK_ENV = {
    "PYSPARK_SUBMIT_ARGS": "--master local[1] --driver-memory 512m --conf spark.ui.enabled=false pyspark-shell",
    "SPARK_LOCAL_IP": "127.0.0.1",
}


async def run(kc: Any, code: str, timeout: float = 300.0) -> tuple[dict[str, Any], str]:
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = await kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply["content"], "".join(out)


def require_spark() -> None:
    assert importlib.util.find_spec("pyspark") is not None, "pyspark is not installed (pip install 'pyspark==3.5.*')"
    assert shutil.which("java"), "java is not on PATH (apt-get install openjdk-17-jre-headless)"


async def check_lazy_spark(launch: Launch) -> None:
    kc = await launch.client()
    content, out = await run(kc, "print(type(spark).__name__, type(sc).__name__)")
    assert out.split() == ["LazyVariable", "LazyVariable"], content  # nothing started before first use
    content, out = await run(kc, "print(spark.range(5).count(), sc.appName != '')")
    assert content["status"] == "ok" and out.split() == ["5", "True"], content
    content, out = await run(kc, "print(type(spark).__name__, type(sc).__name__)")
    assert out.split() == ["SparkSession", "SparkContext"]
    # An interrupt also sends SIGUSR2 (cancel Spark jobs): the kernel must survive it.
    msg_id = await start_busy_cell(kc)
    assert (await launch.comm("interrupt"))["ok"] is True
    await interrupted_reply(kc, msg_id)
    assert await launch.comm("ping") == {"ok": True, "alive": True}


async def check_eager_spark(launch: Launch) -> None:
    kc = await launch.client()
    # The background thread replaces the stand-in by itself, without anyone touching `spark`.
    probe = "import time\nwhile type(get_ipython().user_ns['spark']).__name__ != 'SparkSession':\n    time.sleep(0.1)"
    content, _ = await run(kc, probe, timeout=300)
    assert content["status"] == "ok", content
    content, out = await run(kc, "print(spark.range(3).count())")
    assert content["status"] == "ok" and out.strip() == "3", content
    content, out = await run(kc, "print(type(spark).__name__)")
    assert out.strip() == "SparkSession"


@pytest.mark.timeout(400)
async def test_spark_session_lazy_and_eager(launcher: Launcher) -> None:
    require_spark()
    lazy, eager = await asyncio.gather(
        launcher(SPARK_ENV, args=["--spark-context-initialization-mode", "lazy"]),
        launcher({**SPARK_ENV, "KERNEL_SPARK_CONTEXT_INIT_MODE": "eager", "KERNEL_CLUSTER_TYPE": "spark"}),
    )
    await asyncio.gather(check_lazy_spark(lazy), check_eager_spark(eager))


async def test_missing_dask_gives_a_clear_error_on_use(launcher: Launcher) -> None:
    assert importlib.util.find_spec("dask") is None, "this test needs an environment without dask"
    launch = await launcher({"KERNEL_CLUSTER_TYPE": "dask"})
    kc = await launch.client()
    content, _ = await run(kc, "client.submit(sum, [1, 2])")
    assert content["status"] == "error" and content["ename"] == "NamespaceVariableError"
    assert "dask.distributed is not installed" in content["evalue"]
    content, out = await run(kc, "print('alive')")
    assert out.strip() == "alive"
