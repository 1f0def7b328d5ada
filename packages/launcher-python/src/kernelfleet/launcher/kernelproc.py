"""The running kernel as the supervisor sees it: signalled by group, watched without polling.

The kernel runs in its own process group, so signals aimed at it (interrupt, terminate, kill) also
reach whatever it started (``!cmd``, subprocesses) but never the launcher; and when it is gone the
launcher can sweep that group so nothing lingers. Exit is observed through a pidfd (Linux >= 5.3),
or a waiting thread elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import signal

from kernelfleet.launcher.spawn import exit_status


class KernelProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pgid = pid  # spawned with setsid: it leads its own session and group
        self.status: int | None = None
        self._exited: asyncio.Future[int] | None = None
        self._reaper_thread = False  # set when a thread owns waitpid (no pidfd): then poll() must not reap

    def poll(self) -> int | None:
        """Reap the kernel if it has exited; its exit status, or None while it runs."""
        if self.status is None and not self._reaper_thread:
            try:
                pid, waitstatus = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: nothing is known about how it ended
                self.status = 255
            else:
                if pid:
                    self.status = exit_status(waitstatus)
        return self.status

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
        """Last resort on the way out: SIGKILL and wait, without an event loop."""
        if self.alive and not self._reaper_thread:
            self.signal(signal.SIGKILL)
            _, waitstatus = os.waitpid(self.pid, 0)
            self.status = exit_status(waitstatus)

    def sweep(self) -> None:
        """SIGKILL whatever is left in the kernel's group after the kernel itself exited."""
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self) -> asyncio.Future[int]:
        """A future resolving to the kernel's exit status; every caller shares the same one."""
        if self._exited is None:
            loop = asyncio.get_running_loop()
            self._exited = loop.create_future()
            self._watch(loop)
        return self._exited

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.poll() is not None:
            self._resolve()
            return
        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self._reaper_thread = True
            loop.run_in_executor(None, self._wait_blocking, loop)
            return

        def readable() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            self.poll()
            self._resolve()

        loop.add_reader(pidfd, readable)

    def _wait_blocking(self, loop: asyncio.AbstractEventLoop) -> None:
        _, waitstatus = os.waitpid(self.pid, 0)
        loop.call_soon_threadsafe(self._resolve, exit_status(waitstatus))

    def _resolve(self, status: int | None = None) -> None:
        if status is not None and self.status is None:
            self.status = status
        if self._exited is not None and not self._exited.done() and self.status is not None:
            self._exited.set_result(self.status)
