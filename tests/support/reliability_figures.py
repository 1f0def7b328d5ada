"""Measured figures for docs/reliability.md: each test appends what it measured as one JSON line.

Tests call ``record_figure`` with what they measured (and print it); when ``KF_RELIABILITY_FIGURES`` names a
file, the figure is appended to it as one JSON object, and ``tools/`` turns those lines into the document's
table. Without the variable only the printed line remains.
"""

from __future__ import annotations

import json
import os
import sys


def record_figure(test: str, engine: str, fault: str, metric: str, value: float) -> None:
    """Print one measurement and append it to ``$KF_RELIABILITY_FIGURES`` (if set) as one JSON line."""
    print(f"\n[figure] {engine} / {fault}: {metric} = {value:.3f} ({test})", file=sys.stderr)
    path = os.environ.get("KF_RELIABILITY_FIGURES")
    if not path:
        return
    line = json.dumps({"test": test, "engine": engine, "fault": fault, "metric": metric, "value": float(value)})
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")
