"""Helpers for tests that run kernels on yarnlite: a fake ``SPARK_HOME`` whose ``bin/spark-submit`` is the
test-only stand-in (``spark_submit``), and the cluster the tests share."""

from __future__ import annotations

import sys
from pathlib import Path

from .cluster import Cluster, Queue

STAND_IN = f"""#!{sys.executable}
# TEST-ONLY spark-submit stand-in (kernelfleet.yarnlite.spark_submit): submits over YARN's REST API, not Spark.
from kernelfleet.yarnlite.spark_submit import main

main()
"""


def make_spark_home(root: Path, jars: Path | None = None) -> Path:
    """``root/bin/spark-submit`` as the stand-in, plus the ``python/lib`` py4j zip GP's kernelspecs name, and
    ``root/jars`` linked to ``jars`` (a real Spark's jars, e.g. pyspark's) for JVM drivers such as Toree."""
    (root / "bin").mkdir(parents=True, exist_ok=True)
    if jars is not None:
        (root / "jars").symlink_to(jars, target_is_directory=True)
    (root / "python" / "lib").mkdir(parents=True, exist_ok=True)
    (root / "python" / "lib" / "py4j-0.10.9.7-src.zip").write_bytes(b"")
    submit = root / "bin" / "spark-submit"
    submit.write_text(STAND_IN)
    submit.chmod(0o755)
    return root


def cluster_for_tests(work_dir: Path) -> Cluster:
    """The cluster the tests use: queue ``default``, and queue ``full`` that never has room (the queue timeout)."""
    return Cluster(work_dir, queues=[Queue("default"), Queue("full", max_running=0)])
