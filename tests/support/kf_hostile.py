"""pytest plugin: what a hostile test defends against, carried into the JUnit report.

Loaded for every run (pytest.ini ``-p kf_hostile``). A test marked ``@pytest.mark.hostile`` states the
attack in the first line of its docstring; the plugin records that line as the ``attack`` property,
and the test records what it measured with ``record_property("measured", ...)``.
``tools/security-report`` runs the hostile tests and turns those properties into the table in
docs/security.md, so the table always shows what the current code did.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hostile: an attack or hostile input, reported by tools/security-report")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when != "call" or item.get_closest_marker("hostile") is None:
        return
    doc = (getattr(getattr(item, "function", None), "__doc__", None) or "").strip()
    if doc:
        attack = " ".join(doc.splitlines()[0].split())
    else:  # the test's name says it: test_taken_name_fails[docker] -> "taken name fails (docker)"
        name, _, param = item.name.partition("[")
        attack = name.removeprefix("test_").replace("_", " ") + (f" ({param.rstrip(']')})" if param else "")
    # JUnit reads the properties of the teardown report, which copies the item's: record them on the item.
    if not any(name == "attack" for name, _ in item.user_properties):
        item.user_properties.append(("attack", attack))
