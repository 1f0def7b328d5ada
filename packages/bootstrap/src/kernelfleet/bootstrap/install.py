"""Write `bootstrap-kernel.sh` and the chosen languages' launchers into an image's install dir.

Every source file is located before anything is written, so a missing launcher leaves the image
untouched instead of half installed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from . import sources
from .errors import BootstrapError

SUPPORTED_LANGUAGES = ("python", "r", "scala")
SCRIPT_NAME = "bootstrap-kernel.sh"
LAUNCHERS_DIR_NAME = "kernel-launchers"
INSTALL_DIR_TOKEN = "@KERNELFLEET_INSTALL_DIR@"


class InstallResult(NamedTuple):
    """What was written, for the installer's report lines."""

    languages: list[str]
    launchers_dir: Path
    script: Path | None


def normalize_languages(languages: Iterable[str]) -> list[str]:
    """Lower-case, de-duplicated, in the given order; an unknown language is an error."""
    chosen: list[str] = []
    for language in languages:
        name = language.strip().lower()
        if name not in SUPPORTED_LANGUAGES:
            raise BootstrapError(
                f"unsupported language {language!r}; supported languages: {', '.join(SUPPORTED_LANGUAGES)}"
            )
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise BootstrapError(f"no language given; use --languages with one of: {', '.join(SUPPORTED_LANGUAGES)}")
    return chosen


def render_bootstrap_script(install_dir: Path) -> str:
    """The packaged script with its default `KERNEL_LAUNCHERS_DIR` base set to `install_dir`."""
    template = (sources.PACKAGE_DIR / SCRIPT_NAME).read_text(encoding="utf-8")
    if INSTALL_DIR_TOKEN not in template:
        raise BootstrapError(f"the packaged {SCRIPT_NAME} has no {INSTALL_DIR_TOKEN} marker; the package is damaged")
    return template.replace(INSTALL_DIR_TOKEN, shlex.quote(str(install_dir)))


def plan(
    languages: Sequence[str], toree_jar: Path | None, launcher_roots: Sequence[Path]
) -> dict[str, list[sources.FileCopy]]:
    """Locate every file for every language, reporting all that are missing at once."""
    files: dict[str, list[sources.FileCopy]] = {}
    problems: list[str] = []
    for language in languages:
        try:
            if language == "python":
                files[language] = sources.python_files()
            elif language == "r":
                files[language] = sources.r_files(launcher_roots)
            else:
                files[language] = sources.scala_files(launcher_roots, toree_jar)
        except BootstrapError as error:
            problems.append(str(error))
    if problems:
        raise BootstrapError("\n".join(problems))
    return files


def _write_atomically(target: Path, data: bytes, mode: int) -> None:
    """Write beside the target and rename, so an image never holds a truncated script."""
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


#: Gateway Provisioners' R launcher directory, relative to kernel-launchers; ours is ``r``.
GP_R_SCRIPTS = Path("R") / "scripts"


def link_gp_r_path(launchers_dir: Path) -> None:
    """Make ``kernel-launchers/R/scripts`` (Gateway Provisioners' path) lead to our ``r`` directory, so GP-written
    kernelspecs that run ``.../R/scripts/launch_IRkernel.R`` find the launcher and its sibling files."""
    link = launchers_dir / GP_R_SCRIPTS
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(Path("..") / "r", target_is_directory=True)


def install(
    languages: Iterable[str],
    install_dir: Path | str = "/usr/local/bin",
    *,
    launchers_only: bool = False,
    toree_jar: Path | None = None,
    launcher_roots: Sequence[Path] | None = None,
) -> InstallResult:
    """Install the launchers of `languages` (and, unless `launchers_only`, the bootstrap script).

    Each `kernel-launchers/<language>` directory belongs to us and is replaced as a whole, so a
    re-install never leaves an old jar on the Scala classpath.
    """
    chosen = normalize_languages(languages)
    base = Path(install_dir).absolute()
    roots = list(launcher_roots) if launcher_roots is not None else sources.default_launcher_roots()
    files = plan(chosen, toree_jar, roots)

    launchers_dir = base / LAUNCHERS_DIR_NAME
    for language, copies in files.items():
        language_dir = launchers_dir / language
        if language_dir.is_symlink() or language_dir.is_file():
            language_dir.unlink()
        elif language_dir.exists():
            shutil.rmtree(language_dir)
        for copy in copies:
            target = language_dir / copy.target
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(copy.source, target)
            os.chmod(target, copy.mode)

    if "r" in files:
        link_gp_r_path(launchers_dir)

    script: Path | None = None
    if not launchers_only:
        base.mkdir(parents=True, exist_ok=True)
        script = base / SCRIPT_NAME
        _write_atomically(script, render_bootstrap_script(base).encode("utf-8"), 0o755)
    return InstallResult(chosen, launchers_dir, script)
