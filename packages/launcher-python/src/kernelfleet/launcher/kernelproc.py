"""The running kernel as the supervisor sees it: signalled by group, reaped with its exit status.

The kernel runs in its own process group, so signals aimed at it (interrupt, terminate, kill) also
reach whatever it started (``!cmd``, subprocesses) but never the launcher; and when it is gone the
launcher can sweep that group so nothing lingers. The kernel is the launcher's child, so its exit
arrives as SIGCHLD: the supervisor (supervisor.py) calls ``poll`` from its loop when one comes.
"""

from __future__ import annotations

import os
import signal

from kernelfleet.launcher.spawn import exit_status


class KernelProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pgid = pid  # spawned with setsid: it leads its own session and group
        self.status: int | None = None

    def poll(self) -> int | None:
        """Reap the kernel if it has exited; its exit status, or None while it runs."""
        if self.status is None:
            try:
                pid, waitstatus = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: nothing is known about how it ended
                self.status = 255
            else:
                if pid:
                    self.status = exit_status(waitstatus)
        return self.status

    def running(self) -> bool:
        """Whether the kernel still runs, without reaping it: its exit status stays for ``poll`` to collect."""
        if self.status is not None:
            return False
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return info is None

    @property
    def alive(self) -> bool:
        return self.poll() is None

    def signal(self, signum: int, *, group: bool = True) -> None:
        """Signal the kernel's group (like jupyter_client does for local kernels), or only the kernel."""
        if not self.alive:
            return
        try:
            if group:
                os.killpg(self.pgid, signum)
            else:
                os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def kill_and_reap(self) -> None:
        """Last resort on the way out: SIGKILL and wait."""
        if self.alive:
            self.signal(signal.SIGKILL)
            _, waitstatus = os.waitpid(self.pid, 0)
            self.status = exit_status(waitstatus)

    def sweep(self) -> None:
        """SIGKILL whatever is left in the kernel's group after the kernel itself exited."""
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
