"""Handing the kernel from the launcher's reporting phase to its small, long-lived supervisor: one exec.

The reporting phase (main.py, reporter.py) needs asyncio, pycryptodome and sometimes pyzmq: together
about 25 MB of private memory, which a supervisor would otherwise keep for the kernel's whole life next
to every kernel (issue 15, section 3). Once the report is accepted (or the launch must be stopped), the
process re-executes itself as ``python -I -S`` running supervisor.py, which imports only the standard
library's small modules. exec keeps what matters: the pid the report named, the kernel as its child,
the comm port's listening socket and the kernel ports' reservations (inherited descriptors), and any
SIGTERM/SIGINT/SIGCHLD that arrives meanwhile (blocked before the exec, pending until the supervisor
has its handlers). The state travels through a pipe, never the command line or the environment, since
it holds the comm key; the new process's environment no longer has LAUNCH_TOKEN.
"""

from __future__ import annotations

import json
import os
import signal
import sys

TYPE_CHECKING = False  # typing itself stays unloaded: these modules run in the launcher's small supervisor
if TYPE_CHECKING:
    from typing import Any

# The signals the supervisor handles: held back across the exec instead of hitting default actions.
HELD_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)
# ``python -c`` program of the supervisor's process; argv: the handover fd, the import roots, "--", then the
# launcher's own arguments, so that ps (and whoever looks for the launcher) sees the same process as before:
# "kernelfleet.launcher" and every argument it was started with (none of them is a secret).
_BOOT = (
    "import sys; sys.path[:0] = sys.argv[3:sys.argv.index('--')]; "
    "from kernelfleet.launcher.supervisor import main; sys.exit(main(int(sys.argv[2])))"
)
_PROCESS_NAME = "kernelfleet.launcher"
_WITHHELD_ENV = ("LAUNCH_TOKEN",)


class Handover:
    """Everything the supervisor needs from the reporting phase (the comm key included)."""

    def __init__(
        self,
        *,
        kernel_pid: int,
        kernel_id: str,
        comm_fd: int,
        comm_key: bytes,
        reservation_fds: list[int],
        connection_file: str,
        cluster_type: str,
        spark_init_mode: str,
        log_level: int,
        stop: tuple[int, float] | None = None,
    ) -> None:
        self.kernel_pid, self.kernel_id = kernel_pid, kernel_id
        self.comm_fd, self.comm_key, self.reservation_fds = comm_fd, comm_key, reservation_fds
        self.connection_file = connection_file
        self.cluster_type, self.spark_init_mode, self.log_level = cluster_type, spark_init_mode, log_level
        # (exit status, grace): stop the kernel at once, and exit with this status (report failed, signal...)
        self.stop = stop

    def dumps(self) -> bytes:
        fields: dict[str, Any] = dict(vars(self), comm_key=self.comm_key.hex())
        return json.dumps(fields).encode()

    @classmethod
    def loads(cls, data: bytes) -> Handover:
        fields = json.loads(data)
        fields["comm_key"] = bytes.fromhex(fields["comm_key"])
        fields["stop"] = tuple(fields["stop"]) if fields["stop"] else None
        return cls(**fields)


def hold_signals() -> None:
    """Block the supervisor's signals until it has handlers; called by the reporting phase before it ends."""
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)


def release_signals() -> None:
    """Deliver what arrived while the signals were held; called once the supervisor's handlers are in place."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)


def _import_roots() -> list[str]:
    """The sys.path entries holding kernelfleet.launcher and kernelfleet.protocol (site is not loaded)."""
    import kernelfleet.launcher
    import kernelfleet.protocol

    roots: list[str] = []
    for module in (kernelfleet.launcher, kernelfleet.protocol):
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(module.__file__ or ""))))
        if root not in roots:
            roots.append(root)
    return roots


def exec_supervisor(handover: Handover) -> None:
    """Become the supervisor; returns only if the exec failed (OSError raised, nothing changed but the pipe)."""
    read_fd, write_fd = os.pipe()
    try:
        data = handover.dumps()
        while data:  # far below a pipe's capacity: never blocks
            data = data[os.write(write_fd, data):]
    finally:
        os.close(write_fd)
    for fd in (read_fd, handover.comm_fd, *handover.reservation_fds):
        os.set_inheritable(fd, True)
    env = {k: v for k, v in os.environ.items() if k not in _WITHHELD_ENV}
    argv = [sys.executable, "-I", "-S", "-c", _BOOT, _PROCESS_NAME, str(read_fd), *_import_roots(), "--", *sys.argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, argv, env)
    except OSError:
        os.close(read_fd)
        raise


def receive(fd: int) -> Handover:
    """The supervisor's side: read the reporting phase's state from the inherited pipe."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return Handover.loads(b"".join(chunks))
