"""`jupyter image-bootstrap install`: what a Dockerfile runs to make an image a Kernel Fleet kernel image."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from jupyter_core.application import JupyterApp
from traitlets import Bool, List, Unicode

from . import __version__
from .errors import BootstrapError
from .install import SCRIPT_NAME, SUPPORTED_LANGUAGES, install


class ImageBootstrapInstaller(JupyterApp):
    """Copies bootstrap-kernel.sh and the selected kernel launchers into the image."""

    name = "ImageBootstrapInstaller"
    version = __version__
    description = "Install bootstrap-kernel.sh and the kernel launchers for the given languages into an image."
    examples = "jupyter image-bootstrap install --languages python --languages r"

    languages = List(
        Unicode(),
        default_value=["python"],
        help=f"Languages whose launchers to install (repeatable; any case): {', '.join(SUPPORTED_LANGUAGES)}.",
    ).tag(config=True)
    launchers_only = Bool(False, help="Install only the kernel launchers, not bootstrap-kernel.sh.").tag(config=True)
    install_dir = Unicode(
        "/usr/local/bin", help="Directory for bootstrap-kernel.sh; launchers go to <dir>/kernel-launchers."
    ).tag(config=True)
    toree_jar = Unicode(
        "",
        help="Toree assembly jar for Scala (default: toree/lib/toree-assembly-*.jar of the installed toree package).",
    ).tag(config=True)

    aliases = {
        "languages": "ImageBootstrapInstaller.languages",
        "install-dir": "ImageBootstrapInstaller.install_dir",
        "toree-jar": "ImageBootstrapInstaller.toree_jar",
        "config": "JupyterApp.config_file",
        "log-level": "Application.log_level",
    }
    flags = {
        "launchers-only": (
            {"ImageBootstrapInstaller": {"launchers_only": True}},
            "Install only the kernel launchers, not bootstrap-kernel.sh.",
        ),
        "debug": ({"Application": {"log_level": 10}}, "Set the log level to DEBUG."),
    }

    def start(self) -> None:
        if self.extra_args:
            # traitlets takes one value per --languages; a second word would otherwise be dropped silently
            print(
                f"[{self.name}] error: unexpected argument {self.extra_args[0]!r}; "
                "repeat the option for each language: --languages python --languages r",
                file=sys.stderr,
            )
            self.exit(1)
        try:
            result = install(
                self.languages,
                self.install_dir,
                launchers_only=self.launchers_only,
                toree_jar=Path(self.toree_jar) if self.toree_jar else None,
            )
        except (BootstrapError, OSError) as error:
            for line in str(error).splitlines():
                print(f"[{self.name}] error: {line}", file=sys.stderr)
            self.exit(1)
        print(
            f"[{self.name}] Kernel-launcher files have been copied to {result.launchers_dir} "
            f"for the following languages: {result.languages}."
        )
        if result.script is not None:
            print(f"[{self.name}] {SCRIPT_NAME} has been copied to {result.script.parent}.")
            print(f"[{self.name}] The CMD entry in the Dockerfile should be updated to: CMD {result.script}")


class ImageBootstrapApp(JupyterApp):
    """Entry point with the single subcommand `install`, as in Gateway Provisioners."""

    name = "jupyter-image-bootstrap"
    version = __version__
    description = "Add Kernel Fleet's bootstrap script and kernel launchers to a kernel image."
    examples = "jupyter image-bootstrap install --languages python --languages r"
    subcommands = {
        "install": (ImageBootstrapInstaller, ImageBootstrapInstaller.description),
    }

    def start(self) -> None:
        if self.subapp is None:
            self.print_help()
            self.exit(1)
        self.subapp.start()


def main(argv: list[str] | None = None, **kwargs: Any) -> None:
    """Console script `jupyter-image-bootstrap`."""
    ImageBootstrapApp.launch_instance(argv, **kwargs)


if __name__ == "__main__":
    main()
