"""Build every Kernel Fleet distribution (sdist and wheel) into dist/ and prove each one installs alone.

``tools/release`` runs this. For each ``packages/*/pyproject.toml``: ``python -m build`` (the sdist first, then
the wheel built from the unpacked sdist, so a file missing from the sdist fails here), then a fresh venv per
distribution where ``pip install <wheel>`` must succeed with only the declared dependencies (third-party ones
from the configured index, our own siblings from dist/ through ``--find-links``) and ``import kernelfleet.<pkg>``
must work. Ends with a table of artifacts and versions; exits 1 if any step failed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ROOT / "packages"


@dataclass
class Distribution:
    """One package's distribution: where it lives, what it is called, what it imports as."""

    directory: Path
    name: str
    module: str  # kernelfleet.<module>
    version: str = ""
    sdist: Path | None = None
    wheel: Path | None = None
    status: str = "not built"


def discover() -> list[Distribution]:
    """Every package with a pyproject.toml, in directory order; its import name is its one src/kernelfleet/<dir>."""
    found = []
    for pyproject in sorted(PACKAGES.glob("*/pyproject.toml")):
        name = tomllib.loads(pyproject.read_text())["project"]["name"]
        modules = [p.name for p in (pyproject.parent / "src" / "kernelfleet").iterdir()
                   if p.is_dir() and p.name != "__pycache__"]
        if len(modules) != 1:
            raise SystemExit(f"{pyproject.parent}: expected one package under src/kernelfleet, found {modules}")
        found.append(Distribution(pyproject.parent, name, f"kernelfleet.{modules[0]}"))
    return found


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


def build(dist: Distribution, outdir: Path) -> bool:
    """sdist, then the wheel from it; fills in the artifacts and the version the wheel's file name carries."""
    before = set(outdir.iterdir())
    result = run([sys.executable, "-m", "build", "--outdir", str(outdir), str(dist.directory)], cwd=ROOT)
    made = set(outdir.iterdir()) - before
    if result.returncode != 0:
        dist.status = "build failed"
        print(f"{dist.name}: build failed\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}", file=sys.stderr)
        return False
    normalised = dist.name.replace("-", "_")
    dist.sdist = next((p for p in made if p.name.endswith(".tar.gz") and p.name.startswith(normalised)), None)
    dist.wheel = next((p for p in made if p.suffix == ".whl" and p.name.startswith(normalised)), None)
    if dist.sdist is None or dist.wheel is None:
        dist.status = "build made no sdist or no wheel"
        return False
    dist.version = dist.wheel.name.split("-")[1]
    return True


def install_alone(dist: Distribution, outdir: Path, workdir: Path) -> bool:
    """A clean venv, the wheel with its declared dependencies, and its import; nothing else installed."""
    assert dist.wheel is not None
    venv = workdir / dist.name
    created = run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    steps = [
        ("venv", created),
        ("install", run([str(python), "-m", "pip", "install", "-q", "--find-links", str(outdir), str(dist.wheel)])
         if created.returncode == 0 else created),
    ]
    if steps[-1][1].returncode == 0:
        # From / so the repository's sources cannot be imported instead of the installed wheel.
        check = f"import {dist.module}, importlib.metadata as m; print(m.version({dist.name!r}))"
        steps.append(("import", run([str(python), "-c", check], cwd="/")))
    for step, result in steps:
        if result.returncode != 0:
            dist.status = f"{step} failed"
            print(f"{dist.name}: {step} failed\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}", file=sys.stderr)
            return False
    installed = steps[-1][1].stdout.strip()
    if installed != dist.version:
        dist.status = f"installed {installed}, built {dist.version}"
        return False
    dist.status = "ok: installs alone, imports"
    return True


def table(dists: list[Distribution], outdir: Path) -> str:
    rows = [("distribution", "version", "sdist", "wheel", "check")]
    for d in dists:
        rows.append((d.name, d.version or "-", d.sdist.name if d.sdist else "-", d.wheel.name if d.wheel else "-",
                     d.status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([f"artifacts in {outdir}:", *lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/release", description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=ROOT / "dist", help="where the artifacts go (emptied first)")
    parser.add_argument("--no-install-check", action="store_true", help="build only")
    args = parser.parse_args(argv)
    outdir: Path = args.outdir.resolve()
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    dists = discover()
    built = [d for d in dists if build(d, outdir)]
    ok = len(built) == len(dists)
    if not args.no_install_check:
        # Only after every build: a distribution's sibling dependencies come from dist/.
        with tempfile.TemporaryDirectory(prefix="kf-release-") as workdir:
            for dist in built:
                ok = install_alone(dist, outdir, Path(workdir)) and ok
    print(table(dists, outdir))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
