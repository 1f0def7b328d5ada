"""Helpers for tests that run kernels on yarnlite: a fake ``SPARK_HOME`` whose ``bin/spark-submit`` is the
test-only stand-in (``spark_submit``), and a cluster with an HA pair in one call."""

from __future__ import annotations

import sys
from pathlib import Path

STAND_IN = f"""#!{sys.executable}
# TEST-ONLY spark-submit stand-in (kernelfleet.yarnlite.spark_submit): submits over YARN's REST API, not Spark.
from kernelfleet.yarnlite.spark_submit import main

main()
"""


def make_spark_home(root: Path) -> Path:
    """``root/bin/spark-submit`` as the stand-in, plus the ``python/lib`` py4j zip GP's kernelspecs name."""
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "python" / "lib").mkdir(parents=True, exist_ok=True)
    (root / "python" / "lib" / "py4j-0.10.9.7-src.zip").write_bytes(b"")
    submit = root / "bin" / "spark-submit"
    submit.write_text(STAND_IN)
    submit.chmod(0o755)
    return root
