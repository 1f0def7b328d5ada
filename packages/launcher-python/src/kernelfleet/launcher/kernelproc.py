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
import subprocess

from kernelfleet.launcher.spawn import exit_status


class KernelProcess:
    """The running kernel as the supervisor sees it."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.pgid = popen.pid  # start_new_session made it a group (and session) leader
        self._exited: asyncio.Future[int] | None = None

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

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
        assert self._exited is not None
        if self.popen.poll() is not None:
            self._exited.set_result(exit_status(self.popen.returncode))
            return
        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            loop.run_in_executor(None, self._wait_blocking, loop)
            return

        def readable() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            self._resolve(self.popen.wait())

        loop.add_reader(pidfd, readable)

    def _wait_blocking(self, loop: asyncio.AbstractEventLoop) -> None:
        code = self.popen.wait()
        loop.call_soon_threadsafe(self._resolve, code)

    def _resolve(self, returncode: int) -> None:
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(exit_status(returncode))
