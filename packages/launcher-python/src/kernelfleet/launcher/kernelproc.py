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

    def interrupt(self) -> None:
        """SIGINT to the kernel's main thread itself, then to the rest of its group (what the kernel started).

        Python runs signal handlers in the main thread only. A signal sent to the process (``killpg``) may be taken by
        any of the kernel's threads, and when the main thread sleeps in a C call — py4j's socket read while a Spark job
        runs — nothing wakes it: the interrupt is lost (seen in about half the runs of the standalone Spark test).
        ``tgkill`` aims it at the main thread (its tid is the pid), whose blocking call then returns EINTR. The kernel
        gets it once, so ipykernel never sees a second KeyboardInterrupt."""
        if not self.alive:
            return
        if not _signal_main_thread(self.pid, signal.SIGINT):
            self.signal(signal.SIGINT)  # no tgkill: the process-directed signal, as before
            return
        for pid in _group_members(self.pgid):
            if pid != self.pid:
                try:
                    os.kill(pid, signal.SIGINT)
                except ProcessLookupError:
                    pass

    def deliver(self, signum: int) -> None:
        """A signal the server asked for by name (protocol 2.2): to the kernel alone, as Gateway Provisioners'
        launcher sent it, never its group (whatever the kernel started is its business) nor the launcher.

        Aimed at the main thread like an interrupt, for the same reason: Python runs the handler a cell installed
        there, and a main thread asleep in a C call would not wake for a signal another thread took. Job-control
        signals (SIGSTOP, SIGTSTP, SIGCONT) act on the whole process however they are sent."""
        if not self.alive:
            return
        if not _signal_main_thread(self.pid, signum):
            self.signal(signum, group=False)

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


def _signal_main_thread(pid: int, signum: int) -> bool:
    """``tgkill(pid, pid, signum)`` (glibc >= 2.30); False when it is not available or fails. ctypes is imported here,
    on the first interrupt, so an uninterrupted supervisor never pays for it."""
    try:
        import ctypes

        tgkill = ctypes.CDLL(None, use_errno=True).tgkill
    except (OSError, AttributeError):
        return False
    return bool(tgkill(pid, pid, int(signum)) == 0)


def _group_members(pgid: int) -> list[int]:
    """The pids of process group ``pgid`` (from /proc: the fifth field of stat, after the command in parentheses)."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if len(fields) > 2 and int(fields[2]) == pgid:
            members.append(int(name))
    return members
