"""The kernel process: ``python -m kernelfleet.launcher.kernel``, started only by the launcher's supervisor.

It is spawned before the supervisor knows anything, imports ipykernel straight away (the slow part of
any kernel start), and only then reads one JSON line from stdin: the connection file, the kernel class
and the namespace options. EOF instead means the launch was abandoned. After that it does what
``python -m ipykernel_launcher -f FILE`` does, plus the kernel class choice, the optional Spark/Dask
namespace, and dying with the supervisor so a SIGKILLed launcher never leaves a kernel behind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when the launcher dies, however it dies."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the launcher died before prctl took effect
        os._exit(1)


def _read_launch_parameters() -> dict[str, Any] | None:
    """The supervisor's one line on stdin; None on EOF. Afterwards stdin is /dev/null, as for any kernel."""
    line = sys.stdin.buffer.readline()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if not line.strip():
        return None
    params = json.loads(line)
    return params if isinstance(params, dict) else None


def _forget_connection_file(path: str) -> None:
    """The sockets are bound and the server learns the ports from the report: the file, which holds the
    HMAC key, has done its job. Deleting it now keeps the key off disk even if the launcher is SIGKILLed."""
    try:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass


WARM_LINE = b"warm\n"


def _announce_warm(fd: int) -> None:
    """Tell the launcher that the imports are done: a warm pool's standby registers only then (standby.py), so a
    claim never waits for them; a cold launcher skips the line."""
    if fd >= 0:
        try:
            os.write(fd, WARM_LINE)
        except OSError:
            pass  # the supervisor is gone; prctl's SIGKILL follows


def _announce_bound_ports(fd: int, app: Any) -> None:
    """Tell the supervisor, which sends the report only after this line, which ports ipykernel now holds.

    initialize() has bound shell, iopub, stdin and control; the heartbeat thread binds hb on its own,
    on a port the supervisor keeps reserved for it (ports.py), so it cannot be lost in between.
    """
    if fd < 0:
        return
    from kernelfleet.launcher.connfile import KERNEL_PORT_NAMES

    ports = {name: int(getattr(app, name)) for name in KERNEL_PORT_NAMES}
    try:
        os.write(fd, json.dumps(ports).encode() + b"\n")
    except OSError:
        pass  # the supervisor is gone; prctl's SIGKILL follows
    finally:
        os.close(fd)


# What IPKernelApp.initialize imports on its way (measured with ipykernel 7.4 / IPython 9): loaded before the launch
# parameters are read, so a warm pool's standby has them in memory when it is claimed.
_INITIALIZE_IMPORTS = ("ipykernel.debugger", "IPython.core.completerlib", "IPython.core.debugger",
                       "IPython.core.oinspect", "IPython.extensions.storemagic", "sqlite3", "tornado.platform.asyncio",
                       "faulthandler")


def _preload() -> None:
    """Do now what ``IPKernelApp.initialize`` would do on the kernel's path and can be done without its connection
    file: the imports above, and jupyter_client's list of this host's addresses (``localinterfaces``, with psutil:
    about 0.1 s; it is kept for the process). A cold launch pays it either way, while its launcher prepares; a warm
    pool's standby pays it before it is claimed."""
    import importlib

    for name in _INITIALIZE_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    from jupyter_client.localinterfaces import localhost

    localhost()
    _warm_first_cell()


def _warm_first_cell() -> None:
    """What IPython does lazily on a kernel's first cell, done now: ``InteractiveShell.logger`` imports its module,
    the input transformers compile the tokenizer's and their own regular expressions (kept in ``re``'s cache for
    the process), and ipykernel names the cell's file under ``tempfile.gettempdir()``, which probes the directory
    by writing a file (``_apply_claim`` forgets the choice when a claim changes it). Measured on a warm pool's
    claimed kernel: its first ``1+1`` spent 12 ms in that probe and 15 ms in the import and the regular
    expressions, against 5 ms for the whole of its second."""
    import importlib
    import tempfile

    try:
        tempfile.gettempdir()
        importlib.import_module("IPython.core.logger")
        from IPython.core.inputtransformer2 import TransformerManager

        TransformerManager().transform_cell("x = 1\n%time x\n")
    except Exception:  # an IPython without these, or no writable temporary directory: the first cell pays
        pass


TEMPDIR_NAMES = frozenset({"TMPDIR", "TEMP", "TMP"})  # what tempfile.gettempdir() reads


def _apply_claim(params: dict[str, Any]) -> None:
    """A warm pool's standby learns its kernel's environment and working directory only now (launcher/standby.py):
    both take effect before ipykernel initialises and before any user code. Nothing for a cold launch."""
    import tempfile

    env = params.get("env")
    if isinstance(env, dict):
        os.environ.update({k: v for k, v in env.items() if k not in ("LAUNCH_TOKEN", "LAUNCH_TOKEN_FILE")})
    cwd = params.get("cwd")
    if (isinstance(env, dict) and TEMPDIR_NAMES & env.keys()) or (cwd and tempfile.tempdir == os.getcwd()):
        tempfile.tempdir = None  # chosen before the claim (_warm_first_cell) from what the claim changes: choose again
    if cwd:
        try:
            os.chdir(cwd)
        except OSError as err:
            raise SystemExit(f"kernelfleet-launcher: error: cannot enter the working directory {cwd!r}: {err}") \
                from None


def _load_kernel_class(name: str) -> type:
    from ipykernel.kernelbase import Kernel
    from traitlets.utils.importstring import import_item

    try:
        cls = import_item(name)
    except Exception as err:  # any import-time failure of user code must read as this one problem
        raise SystemExit(f"kernelfleet-launcher: error: cannot import kernel class {name!r}: {err}") from None
    if not (isinstance(cls, type) and issubclass(cls, Kernel)):
        raise SystemExit(f"kernelfleet-launcher: error: {name!r} is not a subclass of ipykernel's Kernel")
    return cls


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kernelfleet.launcher.kernel")
    p.add_argument("--parent-pid", type=int, default=0)
    p.add_argument("--bound-fd", type=int, default=-1)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    # The launcher follows each interrupt of a Spark kernel with SIGUSR2 (cancel Spark jobs); until the
    # namespace installs its handler, SIGUSR2's default action would kill the kernel.
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    if args.parent_pid:
        _die_with_parent(args.parent_pid)
    # As ipykernel_launcher does: keep the working directory out of sys.path while ipykernel loads;
    # IPython's init_path puts it back for user code.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]

    from ipykernel.kernelapp import IPKernelApp

    _preload()
    _announce_warm(args.bound_fd)
    params = _read_launch_parameters()
    if params is None:
        return 0
    _apply_claim(params)
    spark = params["cluster_type"] == "spark" and params["spark_mode"] in ("lazy", "eager")
    if not spark:
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)

    app = IPKernelApp.instance(kernel_class=_load_kernel_class(params["kernel_class_name"]))
    app.initialize(["-f", params["connection_file"]])
    _forget_connection_file(params["connection_file"])
    if params.get("curve") and getattr(app, "curve_secretkey", None) is None:
        # The report promises curve keys: a kernel serving plaintext would never answer the server.
        raise SystemExit("kernelfleet-launcher: error: this ipykernel did not apply the CurveZMQ keys")
    _announce_bound_ports(args.bound_fd, app)
    shell = getattr(app, "shell", None)
    if shell is not None and (spark or params["cluster_type"] == "dask"):
        from kernelfleet.launcher.namespace import install

        install(shell.user_ns, spark_mode=params["spark_mode"], cluster_type=params["cluster_type"])
    app.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
