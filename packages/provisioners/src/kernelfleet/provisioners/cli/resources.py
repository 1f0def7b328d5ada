"""The files a kernelspec carries besides kernel.json: the language's logos (and IRkernel's ``kernel.js``), taken
from that language's own kernel package where it is installed on this host — ipykernel for Python, IRkernel for R,
Apache Toree for Scala — so a Kernel Fleet kernel shows the same icon in JupyterLab's launcher as the local one.

Called by ``BaseSpecInstaller.install`` (every ``jupyter *-spec install``). A package that is not installed here
only means no logo: the kernel runs elsewhere, so its absence is no error, and the installer says so in one line.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

#: File names a kernelspec directory may carry for the front end (jupyter_client's and JupyterLab's names).
RESOURCE_NAMES = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg", "kernel.js")
#: Where Debian's r-cran-irkernel and IRkernel::installspec() put IRkernel's kernelspec.
IRKERNEL_SPEC_DIRS = (Path("/usr/share/jupyter/kernels/ir"), Path("/usr/local/share/jupyter/kernels/ir"))


def _package_dir(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _irkernel_spec_dir() -> Path | None:
    """IRkernel's own kernelspec directory: asked of R itself when Rscript is here, else the usual places."""
    rscript = shutil.which("Rscript")
    if rscript is not None:
        try:
            run = subprocess.run([rscript, "--vanilla", "-e", 'cat(system.file("kernelspec", package="IRkernel"))'],
                                 capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            run = None
        if run is not None and run.returncode == 0 and run.stdout.strip():
            return Path(run.stdout.strip())
    return next((path for path in IRKERNEL_SPEC_DIRS if path.is_dir()), None)


def source_dir(lang: str) -> tuple[str, Path | None]:
    """(the package the resources come from, its directory here or None) for ``python``, ``r`` or ``scala``."""
    if lang == "python":
        found = _package_dir("ipykernel")
        return "ipykernel", found / "resources" if found else None
    if lang == "r":
        return "IRkernel", _irkernel_spec_dir()
    return "Apache Toree (the toree package)", _package_dir("toree")


def kernel_resources(lang: str) -> tuple[str, dict[str, Path]]:
    """(source package, {file name: path}) of the resources found for ``lang``; empty when none is installed."""
    package, directory = source_dir(lang)
    if directory is None:
        return package, {}
    return package, {name: directory / name for name in RESOURCE_NAMES if (directory / name).is_file()}
