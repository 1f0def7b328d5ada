"""Shared by the scripts that write measured tables into docs/ (security_report, reliability_report).

Each of them runs a set of tests with a JUnit report, turns the results into a Markdown table, and
replaces the text between two HTML-comment markers of a page, so the page shows what the current
code did rather than what someone once wrote down.
"""

from __future__ import annotations

import difflib
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TestOutcome:
    """One test case as the JUnit report gives it, with the properties the test recorded."""

    test: str
    outcome: str
    seconds: float
    properties: dict[str, str]


def parse_junit(xml_text: str) -> list[TestOutcome]:
    """Pure: the JUnit XML of a run -> one outcome per test case ("passed", "FAILED" or "skipped")."""
    outcomes = []
    for case in ET.fromstring(xml_text).iter("testcase"):
        props = {p.get("name") or "": p.get("value") or "" for p in case.iter("property")}
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "FAILED"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
        outcomes.append(TestOutcome(name, outcome, float(case.get("time") or 0.0), props))
    return outcomes


def replace_between_markers(doc: str, markers: tuple[str, str], table: str) -> str:
    """Pure: ``doc`` with the text between the two markers replaced by ``table``."""
    start, end = markers
    if start not in doc or end not in doc:
        raise ValueError(f"the page lacks the {start} / {end} markers")
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{table}\n{end}{tail}"


def write_or_check(output: Path, text: str, *, check: bool, regenerate: str, root: Path) -> int:
    """The end of every generated page's script: with ``check``, exit status 1 and a diff when ``output`` is not
    ``text`` (CI's staleness test); else write it when it changed. ``regenerate`` names the command to run."""
    current = output.read_text() if output.exists() else ""
    if check:
        if text == current:
            return 0
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True), "committed",
                                                   "generated"))
        print(f"{output.relative_to(root)} is stale: run {regenerate}", file=sys.stderr)
        return 1
    if text != current:
        output.write_text(text)
        print(f"wrote {output.relative_to(root)}")
    return 0
