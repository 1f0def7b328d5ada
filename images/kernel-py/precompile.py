"""Compile bytecode for exactly the modules a kernel loads, at image build time.

The kernel's user cannot write to /opt/kernel, so anything not compiled here is compiled again in
memory by every kernel that imports it. Compiling the whole venv would cost ~19 MB of .pyc; most
of it (other pygments lexers, unused IPython extras, pip) no kernel start touches. So a throw-away
kernel is started in a child process: it initialises ipykernel, runs a cell, renders a traceback
and completes a name (which loads jedi), and imports every Kernel Fleet module. Whatever it
loaded from the venv gets its .pyc.

Usage (in the image build): python precompile.py
"""

from __future__ import annotations

import os
import pkgutil
import py_compile
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path


def warm(out: Path) -> None:
    """Start a kernel in this process, use it a little, and write the loaded module files to `out`."""
    from ipykernel.kernelapp import IPKernelApp
    from IPython.core.completer import provisionalcompleter

    import kernelfleet.bootstrap
    import kernelfleet.launcher
    import kernelfleet.protocol

    connection_file = out.with_suffix(".json")
    app = IPKernelApp.instance()
    app.initialize([f"--IPKernelApp.connection_file={connection_file}", "--ip=127.0.0.1"])
    app.shell.run_cell("1 + 1", store_history=False)
    app.shell.run_cell("1 / 0", store_history=False)
    with provisionalcompleter():
        list(app.shell.Completer.completions("import os; os.pa", 16))
    for package in (kernelfleet.launcher, kernelfleet.bootstrap, kernelfleet.protocol):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not module.name.endswith(".__main__"):  # __main__ modules run on import
                __import__(module.name)
    files = sorted({f for m in list(sys.modules.values()) if (f := getattr(m, "__file__", None)) and f.endswith(".py")})
    out.write_text("\n".join(files) + "\n")
    # ipykernel now owns fds 1 and 2 and has threads running: leave without any shutdown.
    os._exit(0)


def main() -> int:
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "modules.txt"
        subprocess.run([sys.executable, __file__, "--warm", str(listing)], check=True, cwd=tmp)
        files = [Path(line) for line in listing.read_text().splitlines() if line]
    compiled = 0
    for path in files:
        if path.resolve().is_relative_to(site) and "/pip/" not in path.as_posix():
            py_compile.compile(str(path), doraise=True, quiet=1)
            compiled += 1
    if compiled < 100:
        print(f"precompile: only {compiled} modules were loaded; the warm-up kernel did not start", file=sys.stderr)
        return 1
    print(f"precompile: compiled {compiled} modules a kernel loads")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--warm":
        warm(Path(sys.argv[2]))
    sys.exit(main())
