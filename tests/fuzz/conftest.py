"""The bounded atheris campaign starts as soon as its tests are collected and runs beside the hypothesis
tests (two targets at a time by default; the atheris runs are most of the suite's CPU); its tests run last
and collect the results. KF_FUZZ_RUNS changes the per-target budget, KF_FUZZ_PARALLEL the number of
targets fuzzed at once."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from fuzz_campaign import CI_RUNS, start_bounded

CAMPAIGN = pytest.StashKey[dict]()
RUNS = pytest.StashKey[int]()
ATHERIS_TEST = "test_atheris_target_runs_clean"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The atheris tests only collect results: they go last, so the hypothesis tests run meanwhile.

    Each ``test_finding_*`` regression test replays an input a fuzzer found: it is a hostile-input test
    and goes into docs/security.md's table (tools/security_report.py).
    """
    items.sort(key=lambda item: item.originalname == ATHERIS_TEST)
    for item in items:
        if item.originalname.startswith("test_finding_") and item.path.parent == Path(__file__).parent:
            item.add_marker(pytest.mark.hostile)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the runs of the atheris targets that survived selection (-k, node ids), once collection is final."""
    atheris = [item for item in session.items if item.originalname == ATHERIS_TEST]
    if not atheris:
        return
    runs = int(os.environ.get("KF_FUZZ_RUNS") or CI_RUNS)
    parallel = int(os.environ.get("KF_FUZZ_PARALLEL") or 1)  # one core stays for the rest of the suite
    targets = [item.callspec.params["target"] for item in atheris]
    session.config.stash[RUNS] = runs
    session.config.stash[CAMPAIGN] = start_bounded(targets, runs, Path(tempfile.mkdtemp(prefix="kf-fuzz-")), parallel)


@pytest.fixture
def atheris_campaign(request: pytest.FixtureRequest) -> tuple[dict, int]:
    return request.config.stash[CAMPAIGN], request.config.stash[RUNS]
