"""Coverage-guided fuzzing in CI: every atheris target (tests/support/fuzz_atheris.py) for a bounded number
of runs (10,000 each by default), from the committed seed corpus (tests/fuzz/corpus/<target>), with a fixed
seed so that a CI run is reproducible. A target passes when libFuzzer finishes all its runs without a
broken property. The runs start at collection (conftest.py) and overlap the hypothesis tests.
"""

from __future__ import annotations

import pytest
from fuzz_atheris import TARGETS


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_atheris_target_runs_clean(atheris_campaign: tuple[dict, int], target: str) -> None:
    futures, runs = atheris_campaign
    result = futures[target].result(timeout=1800)
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
    assert result.returncode == 0, f"atheris target {target} found a broken property:\n{tail}"
    assert f"Done {runs} runs" in result.stderr, f"atheris target {target} did not finish its runs:\n{tail}"
