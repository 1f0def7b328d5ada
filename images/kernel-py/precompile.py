"""Compile bytecode for exactly the modules a kernel loads, at image build time.

The kernel's user cannot write to /opt/kernel, so anything not compiled here is compiled again in
memory by every kernel that imports it. Compiling the whole venv would cost ~19 MB of .pyc; most
of it (other pygments lexers, unused IPython extras, pip) no kernel start touches. So a throw-away
kernel is started in a child process: it initialises ipykernel, runs a cell, renders a traceback
and completes a name (which loads jedi), and imports every Kernel Fleet module. Whatever it
loaded from the venv gets its .pyc.

The standard library gets the same treatment when the image's final base has no bytecode for it
(kernelfleet/base-runtime ships none): the stdlib modules the kernel loaded are compiled into a
staging tree that the Dockerfile copies onto the final image, and only those.

Usage (in the image build): python precompile.py [--stdlib-into DIR --final-root ROOT]
  DIR   staging tree for stdlib bytecode (paths as on the image, below DIR)
  ROOT  the final stage's base, mounted: bytecode it already has, or for sources that differ from
        this stage's, is not made
"""

from __future__ import annotations

import importlib.util
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


def stdlib_bytecode(files: list[Path], into: Path, final_root: Path) -> int:
    """Compile loaded stdlib modules whose bytecode the final base lacks into the staging tree `into`.

    A .pyc records its source's mtime and size, so it is made only when the final base has the very
    same source file (same size and mtime) as this stage: then it is valid there.
    """
    paths = sysconfig.get_paths()
    stdlib = {Path(paths["stdlib"]).resolve(), Path(paths["platstdlib"]).resolve()}
    made = 0
    for path in files:
        real = path.resolve()
        if not any(real.is_relative_to(lib) for lib in stdlib) or "site-packages" in real.parts:
            continue
        cache = Path(importlib.util.cache_from_source(str(real)))
        there = final_root / real.relative_to("/")
        if (final_root / cache.relative_to("/")).exists() or not there.is_file():
            continue
        mine, theirs = real.stat(), there.stat()
        if (mine.st_size, int(mine.st_mtime)) != (theirs.st_size, int(theirs.st_mtime)):
            continue
        target = into / cache.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        py_compile.compile(str(real), cfile=str(target), doraise=True, quiet=1)
        made += 1
    return made


def main(argv: list[str]) -> int:
    options = dict(zip(argv[::2], argv[1::2], strict=True))
    unknown = set(options) - {"--stdlib-into", "--final-root"}
    if unknown or ("--stdlib-into" in options) != ("--final-root" in options):
        print("usage: precompile.py [--stdlib-into DIR --final-root ROOT]", file=sys.stderr)
        return 2
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
    if "--stdlib-into" in options:
        into = Path(options["--stdlib-into"])
        into.mkdir(parents=True, exist_ok=True)
        made = stdlib_bytecode(files, into, Path(options["--final-root"]))
        print(f"precompile: compiled {made} stdlib modules the final base has no bytecode for")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--warm":
        warm(Path(sys.argv[2]))
    sys.exit(main(sys.argv[1:]))
