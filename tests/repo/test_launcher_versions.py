"""The R and Scala launchers each have one version source, ``launchers/<language>/VERSION`` (issue 10, item 7):
the R launcher reads it at run time (kernelfleet-bootstrap ships it beside the ``*.R`` files), the Scala build
generates ``LauncherBuild.Version`` from it. Nothing else may spell the version, or it drifts again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kernelfleet.bootstrap import sources

ROOT = Path(__file__).resolve().parents[2]
VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+(?:[.+-][0-9A-Za-z.+-]*)?")
# A launcher name with a literal version, as the report's "launcher" field spells it ("r/0.1.0", "scala/0.1.0").
SPELLED = {"r": re.compile(r"[\"']r/[0-9]+\.[0-9]+"), "scala": re.compile(r"[\"']scala/[0-9]+\.[0-9]+")}
SOURCE_SUFFIXES = {".R", ".scala", ".py", ".sh", ""}


@pytest.mark.parametrize("language", ["r", "scala"])
def test_one_version_file(language: str) -> None:
    text = (ROOT / "launchers" / language / "VERSION").read_text()
    assert VERSION.fullmatch(text.strip()), f"launchers/{language}/VERSION holds {text!r}, not a version"
    assert text == text.strip() + "\n", f"launchers/{language}/VERSION: one line, the version only"


@pytest.mark.parametrize("language", ["r", "scala"])
def test_nothing_else_spells_the_version(language: str) -> None:
    places = [ROOT / "launchers", ROOT / "tests", ROOT / "packages" / "bootstrap", ROOT / "images"]
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for place in places
        for path in place.rglob("*")
        if path.is_file() and path.suffix in SOURCE_SUFFIXES and "dist" not in path.parts
        and path.name != "VERSION" and path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if SPELLED[language].search(line)
    ]
    assert found == [], f"the {language} launcher's version is spelled outside launchers/{language}/VERSION: {found}"


def test_the_r_version_file_is_shipped_with_the_r_launcher() -> None:
    shipped = {copy.target for copy in sources.r_files([ROOT / "launchers"])}
    assert {"VERSION", "launch_IRkernel.R", "kf_launcher.R"} <= shipped
    hook = (ROOT / "packages" / "bootstrap" / "hatch_build.py").read_text()
    assert 'R_VERSION = "r/VERSION"' in hook and "base / R_VERSION" in hook, "the wheel hook must pack r/VERSION"


def test_the_launchers_take_their_version_from_the_file() -> None:
    r_code = (ROOT / "launchers" / "r" / "kf_launcher.R").read_text()
    assert 'file.path(dir, "VERSION")' in r_code and "launcher = kf_launcher_version()" in r_code
    build = (ROOT / "tools" / "build-scala-launcher").read_text()
    assert 'launchers/scala/VERSION' in build and "LauncherBuild.scala" in build
    scala = (ROOT / "launchers" / "scala" / "src" / "kernelfleet" / "toree" / "ToreeLauncher.scala").read_text()
    assert 's"scala/${LauncherBuild.Version}"' in scala
