"""The built distribution carries the script and the R launcher, and installs R from that packed copy."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from kernelfleet.bootstrap import __version__

EnvMaker = Callable[..., dict[str, str]]
REPO = Path(__file__).resolve().parents[3]
PACKAGE = REPO / "packages" / "bootstrap"
R_DIR = REPO / "launchers" / "r"


def build(outdir: Path, *flags: str) -> list[Path]:
    """`python -m build` exactly as CI runs it; returns the wheels it made."""
    result = subprocess.run(
        [sys.executable, "-m", "build", *flags, "--outdir", str(outdir), str(PACKAGE)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return sorted(outdir.glob(f"kernelfleet_bootstrap-{__version__}-*.whl"))


def r_files() -> list[str]:
    if not (R_DIR / "launch_IRkernel.R").is_file():
        pytest.fail(f"the R launcher is missing: {R_DIR / 'launch_IRkernel.R'} (written by the R launcher's owner)")
    return sorted([*(p.name for p in R_DIR.glob("*.R")), "VERSION"])  # VERSION: the R launcher reads it at run time


@pytest.mark.timeout(900)
def test_wheel_contents_and_install_from_packed_r_launcher(tmp_path: Path, clean_env: EnvMaker) -> None:
    expected_r = r_files()
    wheels = build(tmp_path / "dist", "--wheel")
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
        script_info = wheel.getinfo("kernelfleet/bootstrap/bootstrap-kernel.sh")
    for module in ("__init__", "cli", "install", "sources", "errors", "launch_ipykernel"):
        assert f"kernelfleet/bootstrap/{module}.py" in names
    assert "kernelfleet/__init__.py" not in names  # PEP 420 namespace
    assert script_info.file_size > 0
    packed_r = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("kernelfleet/bootstrap/launchers/r/"))
    assert packed_r == expected_r

    # Installed from the wheel (not the editable source), `install --languages r` uses the packed copy.
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheels[0])]
    assert subprocess.run(pip, capture_output=True, text=True, timeout=300).returncode == 0
    env = clean_env(PYTHONPATH=str(site))
    where = subprocess.run(
        [sys.executable, "-c", "import kernelfleet.bootstrap.sources as s; print(s.PACKAGE_DIR)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.stdout.strip() == str(site / "kernelfleet" / "bootstrap"), where.stderr
    target = tmp_path / "image"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kernelfleet.bootstrap.cli",
            "install",
            "--languages",
            "R",
            "--install-dir",
            str(target),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (target / "kernel-launchers" / "r").iterdir()) == expected_r
    for name in expected_r:
        assert (target / "kernel-launchers" / "r" / name).read_bytes() == (R_DIR / name).read_bytes()


@pytest.mark.timeout(900)
def test_wheel_built_from_sdist_still_has_r_launcher(tmp_path: Path) -> None:
    expected_r = r_files()
    wheels = build(tmp_path / "dist")  # sdist first, then the wheel from the unpacked sdist
    assert len(wheels) == 1
    assert list((tmp_path / "dist").glob(f"kernelfleet_bootstrap-{__version__}.tar.gz"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
    packed_r = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("kernelfleet/bootstrap/launchers/r/"))
    assert packed_r == expected_r
