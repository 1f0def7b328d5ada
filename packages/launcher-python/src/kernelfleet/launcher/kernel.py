"""The kernel child: ``python -m kernelfleet.launcher.kernel``, run only by the launcher's supervisor.

It does what ``python -m ipykernel_launcher -f FILE`` does, plus the kernel class choice, the optional
Spark/Dask namespace, and dying with the supervisor so a SIGKILLed launcher never leaves a kernel behind.
Imports nothing from the supervisor's side, so it costs no more than ipykernel's own launcher.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence


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


def _forget_connection_file(path: str) -> None:
    """The sockets are bound and the server learns the ports from the report: the file, which holds the
    HMAC key, has done its job. Deleting it now keeps the key off disk even if the launcher is SIGKILLed."""
    try:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m kernelfleet.launcher.kernel")
    p.add_argument("--connection-file", required=True)
    p.add_argument("--kernel-id", default="")
    p.add_argument("--kernel-class-name", default="ipykernel.ipkernel.IPythonKernel")
    p.add_argument("--spark-context-initialization-mode", dest="spark_mode", default="none")
    p.add_argument("--cluster-type", default="none")
    p.add_argument("--parent-pid", type=int, default=0)
    return p.parse_args(list(argv))


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
    args = _parse(sys.argv[1:] if argv is None else argv)
    spark = args.cluster_type == "spark" and args.spark_mode in ("lazy", "eager")
    if spark:
        # The launcher follows each interrupt with SIGUSR2 (cancel Spark jobs); until the namespace
        # installs its handler, SIGUSR2's default action would kill the kernel.
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    if args.parent_pid:
        _die_with_parent(args.parent_pid)
    # As ipykernel_launcher does: keep the working directory out of sys.path while ipykernel loads;
    # IPython's init_path puts it back for user code.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]

    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance(kernel_class=_load_kernel_class(args.kernel_class_name))
    app.initialize(["-f", args.connection_file])
    _forget_connection_file(args.connection_file)
    shell = getattr(app, "shell", None)
    if shell is not None and (spark or args.cluster_type == "dask"):
        from kernelfleet.launcher.namespace import install

        install(shell.user_ns, spark_mode=args.spark_mode, cluster_type=args.cluster_type)
    app.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
