"""The Pants BUILD files describe exactly the distributions the pyproject.toml files build (issue 10, item 7).

Pants cannot run here, so the BUILD files are read as Python syntax (they are Starlark-like Python calls): every
``python_distribution`` must name, through ``provides=python_artifact(name=...)``, a pyproject in its own
directory, every pyproject must have one, ``generate_setup=False`` (the pyproject's hatchling build is what Pants
runs), and a version written in BUILD must be the package's one version, ``__version__`` in its ``_version.py``.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"$', re.M)


@dataclass(frozen=True)
class BuildDistribution:
    directory: Path
    target: str
    artifact: str
    version: str | None
    generate_setup: object
    dependencies: tuple[str, ...]


def call_name(node: ast.expr) -> str:
    return node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else ""


def build_distributions() -> list[BuildDistribution]:
    found = []
    for build in sorted(ROOT.glob("**/BUILD")):
        if ".venv" in build.parts or ".git" in build.parts:
            continue
        for node in ast.walk(ast.parse(build.read_text(), str(build))):
            if call_name(node) != "python_distribution":
                continue
            assert isinstance(node, ast.Call)
            kwargs = {kw.arg: kw.value for kw in node.keywords}
            provides = kwargs["provides"]
            assert call_name(provides) == "python_artifact", f"{build}: provides= is not python_artifact(...)"
            assert isinstance(provides, ast.Call)
            artifact = {kw.arg: ast.literal_eval(kw.value) for kw in provides.keywords}
            literal = {key: ast.literal_eval(value) for key, value in kwargs.items() if key != "provides"}
            found.append(BuildDistribution(
                directory=build.parent, target=literal["name"], artifact=artifact["name"],
                version=artifact.get("version"), generate_setup=literal.get("generate_setup"),
                dependencies=tuple(literal.get("dependencies", ())),
            ))
    return found


def pyprojects() -> dict[Path, dict]:
    return {p.parent: tomllib.loads(p.read_text()) for p in sorted((ROOT / "packages").glob("*/pyproject.toml"))}


def single_version(directory: Path, pyproject: dict) -> str:
    """The package's one version: hatchling's dynamic version from the file [tool.hatch.version] names."""
    assert "version" not in pyproject["project"], f"{directory}: version is written in pyproject.toml"
    assert pyproject["project"].get("dynamic") == ["version"], f"{directory}: version is not dynamic"
    path = directory / pyproject["tool"]["hatch"]["version"]["path"]
    assert path.name == "_version.py", f"{directory}: the version lives in {path.name}, not _version.py"
    versions = VERSION_LINE.findall(path.read_text())
    assert len(versions) == 1, f"{path}: expected one __version__ line, found {versions}"
    return versions[0]


def test_build_targets_mirror_the_pyproject_distributions() -> None:
    builds = build_distributions()
    projects = pyprojects()
    assert sorted(b.directory for b in builds) == sorted(projects), "a package lacks a python_distribution or " \
        "a python_distribution has no pyproject.toml next to it"
    for b in builds:
        project = projects[b.directory]
        assert b.artifact == project["project"]["name"], f"{b.directory}/BUILD names {b.artifact!r}"
        assert b.generate_setup is False, f"{b.directory}/BUILD: generate_setup must be False (hatchling builds)"
        if b.version is not None:
            assert b.version == single_version(b.directory, project), f"{b.directory}/BUILD: version differs"
        assert ":lib" in b.dependencies, f"{b.directory}/BUILD: the distribution does not depend on :lib"


@pytest.mark.parametrize("directory", sorted(pyprojects()), ids=lambda d: d.name)
def test_one_version_source_per_package(directory: Path) -> None:
    project = pyprojects()[directory]
    version = single_version(directory, project)
    written = [p for p in (directory / "src").rglob("*.py")
               if p.name != "_version.py" and VERSION_LINE.search(p.read_text())]
    assert not written, f"__version__ is also written in {written}"
    package = Path(project["tool"]["hatch"]["version"]["path"]).parent
    assert [str(package.parent)] == project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", version)


def test_pants_names_no_missing_file() -> None:
    """pants.toml must not point at a lockfile that is not in the repository (see CONTRIBUTING.md)."""
    pants = tomllib.loads((ROOT / "pants.toml").read_text())
    python = pants.get("python", {})
    for resolve, lockfile in python.get("resolves", {}).items():
        assert (ROOT / lockfile).is_file(), f"pants.toml: resolve {resolve} names the missing lockfile {lockfile}"
    if python.get("enable_resolves"):
        assert python.get("resolves"), "pants.toml enables resolves but names none"
