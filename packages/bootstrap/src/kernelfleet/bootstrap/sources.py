"""Where each language's launcher files come from.

A built wheel carries the R and Scala launchers under `kernelfleet/bootstrap/launchers/` (the
build hook copies the repository's `launchers/` there); an editable install has no such copy and
reads the repository's `launchers/` directly. Both use the repository layout
(`r/*.R`, `scala/run.sh`, `scala/dist/kernelfleet-toree-launcher.jar`), so one lookup serves both.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from .errors import BootstrapError

PACKAGE_DIR = Path(__file__).resolve().parent
R_LAUNCHER = "launch_IRkernel.R"
R_VERSION = "VERSION"  # the R launcher's version, read by the launcher at run time
SCALA_RUN = "run.sh"
SCALA_JAR = "kernelfleet-toree-launcher.jar"
PYTHON_SHIM = "launch_ipykernel.py"


class FileCopy(NamedTuple):
    """One file to install: its source, its path under the language's launcher dir, its mode."""

    source: Path
    target: str
    mode: int


def default_launcher_roots() -> list[Path]:
    """The packaged launchers first, then (editable install) the repository's `launchers/`."""
    roots = [PACKAGE_DIR / "launchers"]
    # src/kernelfleet/bootstrap -> packages/bootstrap -> packages -> repository root
    project = PACKAGE_DIR.parents[2]
    if project.name == "bootstrap" and project.parent.name == "packages":
        roots.append(project.parent.parent / "launchers")
    return roots


def _first(roots: Sequence[Path], relative: str) -> Path | None:
    for root in roots:
        candidate = root / relative
        if candidate.is_file():
            return candidate
    return None


def _looked_in(roots: Sequence[Path], relative: str) -> str:
    return ", ".join(str(root / relative) for root in roots)


def python_files() -> list[FileCopy]:
    """The GP-style shim; the launcher itself is the installed `kernelfleet.launcher` module."""
    try:
        spec = importlib.util.find_spec("kernelfleet.launcher")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise BootstrapError(
            "the Python launcher (module kernelfleet.launcher) is not installed; "
            "run: pip install kernelfleet-launcher-python"
        )
    # Also at Gateway Provisioners' path (python/scripts/...), which GP-written kernelspecs and SparkApplications
    # (mainApplicationFile) name.
    return [FileCopy(PACKAGE_DIR / PYTHON_SHIM, PYTHON_SHIM, 0o644),
            FileCopy(PACKAGE_DIR / PYTHON_SHIM, f"scripts/{PYTHON_SHIM}", 0o644)]


def r_files(roots: Sequence[Path]) -> list[FileCopy]:
    """Every `*.R` beside `launch_IRkernel.R` (the launcher may be split over sibling files), and its `VERSION`."""
    launcher = _first(roots, f"r/{R_LAUNCHER}")
    if launcher is None:
        raise BootstrapError(
            f"the R launcher {R_LAUNCHER} was not found (looked in {_looked_in(roots, 'r/' + R_LAUNCHER)})"
        )
    paths = [*sorted(launcher.parent.glob("*.R")), launcher.parent / R_VERSION]
    return [FileCopy(path, path.name, 0o644) for path in paths if path.is_file()]


def toree_assembly_jar(explicit: Path | None) -> Path | None:
    """`--toree-jar`, else the jar shipped in the installed `toree` package (apache-toree)."""
    if explicit is not None:
        return explicit if explicit.is_file() else None
    try:
        spec = importlib.util.find_spec("toree")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        jars = sorted(Path(location, "lib").glob("toree-assembly-*.jar"))
        if jars:
            return jars[-1]
    return None


def scala_files(roots: Sequence[Path], toree_jar: Path | None) -> list[FileCopy]:
    """`run.sh` into `bin/`, our launcher jar and Toree's assembly jar into `lib/`."""
    run_sh = _first(roots, f"scala/{SCALA_RUN}")
    jar = _first(roots, f"scala/dist/{SCALA_JAR}")
    assembly = toree_assembly_jar(toree_jar)
    missing = []
    if run_sh is None:
        missing.append(f"{SCALA_RUN} (looked in {_looked_in(roots, 'scala/' + SCALA_RUN)})")
    if jar is None:
        looked = _looked_in(roots, f"scala/dist/{SCALA_JAR}")
        missing.append(f"{SCALA_JAR} (looked in {looked}; build the Scala launcher jar first)")
    if assembly is None:
        where = f"--toree-jar {toree_jar} is not a file" if toree_jar else "no toree/lib/toree-assembly-*.jar found"
        missing.append(f"the Toree assembly jar ({where}; run: pip install apache-toree, or pass --toree-jar PATH)")
    if missing:
        raise BootstrapError("Scala launcher files are missing: " + "; ".join(missing))
    assert run_sh is not None and jar is not None and assembly is not None
    return [
        FileCopy(run_sh, f"bin/{SCALA_RUN}", 0o755),
        FileCopy(jar, f"lib/{SCALA_JAR}", 0o644),
        FileCopy(assembly, f"lib/{assembly.name}", 0o644),
    ]
