"""Pack the R and Scala launchers into kernelfleet-bootstrap's sdist and wheel.

They live outside the package (`launchers/` at the repository root) so their own tests and
builds stay in their languages; `jupyter image-bootstrap install` reads the packed copy at
`kernelfleet/bootstrap/launchers/`. A hook, rather than a static force-include, because the files
sit at a different place in the repository and in an unpacked sdist, the Scala jar exists only
once built, and an editable install must not need any of them (it reads the repository directly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

R_LAUNCHER = "r/launch_IRkernel.R"
R_VERSION = "r/VERSION"  # read by the R launcher at run time
SCALA_FILES = ("scala/run.sh", "scala/dist/kernelfleet-toree-launcher.jar")


class LauncherFilesHook(BuildHookInterface):
    """Adds the launcher files to `build_data["force_include"]`."""

    PLUGIN_NAME = "custom"

    def _launchers_root(self) -> Path:
        root = Path(self.root).resolve()
        candidates = (root / "launchers", root.parent.parent / "launchers")  # unpacked sdist, repository
        for candidate in candidates:
            if (candidate / R_LAUNCHER).is_file():
                return candidate
        raise FileNotFoundError(
            f"{R_LAUNCHER} not found under {' or '.join(str(c) for c in candidates)}: "
            "kernelfleet-bootstrap cannot be built without the R launcher"
        )

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name == "wheel" and version == "editable":
            return  # an editable install reads the repository's launchers/ in place
        prefix = "kernelfleet/bootstrap/launchers" if self.target_name == "wheel" else "launchers"
        base = self._launchers_root()
        files = [*sorted((base / "r").glob("*.R")), base / R_VERSION]
        for relative in SCALA_FILES:
            if (base / relative).is_file():
                files.append(base / relative)
            else:
                self.app.display_warning(f"kernelfleet-bootstrap: {base / relative} not found; Scala not packed")
        for path in files:
            build_data["force_include"][str(path)] = f"{prefix}/{path.relative_to(base).as_posix()}"
