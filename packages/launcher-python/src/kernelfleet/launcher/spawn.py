"""Starting the kernel process first thing, so ipykernel's import overlaps everything the supervisor does.

Importing ipykernel is the longest step of a kernel start. The kernel process is therefore spawned
before the supervisor has even parsed its arguments, and learns its connection file and kernel class
through one JSON line on its stdin once they exist (see kernel.py). This module imports only what
Python has already loaded at start-up, and os.posix_spawn avoids even the subprocess module.
"""

from __future__ import annotations

import json
import os
import signal
import sys

KERNEL_MODULE = "kernelfleet.launcher.kernel"
# Never handed to the kernel: user code must not be able to read the launch secret. A standby's own names stay
# with its launcher, so the orphan sweep never mistakes a claimed kernel's process for an idle standby.
_WITHHELD_ENV = ("LAUNCH_TOKEN", "KF_STANDBY_ID", "KF_STANDBY_POOL", "KF_STANDBY_PARENT")


def exit_status(waitstatus: int) -> int:
    """A shell-style status from a wait status: the exit code, or 128+N for a kernel killed by signal N."""
    code = os.waitstatus_to_exitcode(waitstatus)
    return 128 - code if code < 0 else code


class EarlyKernel:
    """The kernel process between its spawn and the moment it is told what to run."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _WITHHELD_ENV}
        # What jupyter_client sets for local kernels: ipykernel then watches its parent and skips the
        # "Ctrl-C will not work" banner meant for a kernel started by hand.
        env["JPY_PARENT_PID"] = str(os.getpid())
        read_fd, self._pipe = os.pipe()  # both close-on-exec; the dup2 below makes the child's fd 0 inheritable
        # The kernel's answer: one line with the ports it has bound (kernel.py), EOF if it dies first.
        self.bound_fd, bound_write_fd = os.pipe()
        os.set_inheritable(bound_write_fd, True)
        argv = [sys.executable, "-m", KERNEL_MODULE, f"--parent-pid={os.getpid()}", f"--bound-fd={bound_write_fd}"]
        try:
            # setsid: the kernel leads its own session and process group (see kernelproc.py).
            self.pid = os.posix_spawn(
                sys.executable, argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, read_fd, 0)], setsid=True
            )
        finally:
            os.close(read_fd)
            os.close(bound_write_fd)

    def send(self, params: dict[str, str | bool]) -> bool:
        """Hand over the launch parameters; False when the kernel process has already died."""
        data = json.dumps(params).encode() + b"\n"
        try:
            while data:
                data = data[os.write(self._pipe, data) :]
            return True
        except BrokenPipeError:
            return False
        finally:
            os.close(self._pipe)

    def abandon(self) -> None:
        """The launch is not going ahead: end the process now rather than let it finish importing."""
        for fd in (self._pipe, self.bound_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
