"""Measured reliability figures from the fault tests, one JSON line each, for docs/reliability.md.

Tests call ``record_figure`` with what they measured (seconds to recover, to report a dead kernel, ...);
``tools/`` turns the lines into the table of docs/reliability.md. Nothing is written unless the
environment names a file in ``KF_RELIABILITY_FIGURES``, so ordinary test runs leave no trace.
"""

from __future__ import annotations

import json
import os


def record_figure(test: str, engine: str, fault: str, metric: str, value: float) -> None:
    """Append one figure as a JSON line to the file named by ``KF_RELIABILITY_FIGURES``, when it is set."""
    path = os.environ.get("KF_RELIABILITY_FIGURES")
    if not path:
        return
    line = json.dumps({"test": test, "engine": engine, "fault": fault, "metric": metric, "value": float(value)})
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")
