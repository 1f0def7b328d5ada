"""Running atheris targets as subprocesses: the bounded CI runs (tests/fuzz) and tools/fuzz's long campaigns.

atheris owns its process (libFuzzer's signal handlers, exit on a finding), so each target runs in its own
``python -m fuzz_atheris TARGET`` with the support directory on PYTHONPATH and a fixed hash seed. The first
corpus directory receives new inputs; the others (the committed seeds) are only read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
ROOT = SUPPORT.parents[1]
SEEDS = ROOT / "tests" / "fuzz" / "corpus"
CI_RUNS = 10_000
CI_SEED = 20260412


def fuzz_command(target: str, corpora: Iterable[Path], *flags: str) -> list[str]:
    return [sys.executable, "-m", "fuzz_atheris", target, "-max_len=4096", "-print_final_stats=1", *flags,
            *map(str, corpora)]


def fuzz_environment() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(SUPPORT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONHASHSEED": "0"}


def corpora(target: str, grown: Path) -> list[Path]:
    """Where a run writes (``grown``, made if missing) and reads (that and the committed seeds)."""
    grown.mkdir(parents=True, exist_ok=True)
    seeds = SEEDS / target
    return [grown, seeds] if seeds.is_dir() else [grown]


def run_bounded(target: str, runs: int, scratch: Path) -> subprocess.CompletedProcess[str]:
    """One reproducible CI run: ``runs`` inputs from a fixed seed, new inputs kept only in ``scratch``."""
    command = fuzz_command(target, corpora(target, scratch / target), f"-runs={runs}", f"-seed={CI_SEED}")
    return subprocess.run(command, cwd=scratch, env=fuzz_environment(), capture_output=True, text=True,
                          timeout=1800)


def start_bounded(targets: Iterable[str], runs: int, scratch: Path, parallel: int
                  ) -> dict[str, Future[subprocess.CompletedProcess[str]]]:
    """Start every target on a pool ``parallel`` wide; the caller collects each result when it needs it."""
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="kf-fuzz")
    futures = {target: pool.submit(run_bounded, target, runs, scratch) for target in targets}
    pool.shutdown(wait=False)
    return futures
