"""A local launcher a previous server started: taken over after a restart and followed through a pidfd.

It is no longer our child (its parent died with the old server), so ``waitpid`` cannot tell when it
ends. A pidfd can: it becomes readable when the process exits, and it names that process even if
its pid is reused later. Who it is is checked once, after the pidfd is open, with the same identity
test the SSH hosts use (``ssh_command.signal_command``: the group leader carries ``KERNEL_ID``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os

from kernelfleet.provisioners.ssh.command import signal_command
from kernelfleet.provisioners.ssh.local_process import LauncherGroup


async def run_local_shell(command: str) -> str:
    """Run one of ``ssh_command``'s shell commands on this machine; its standard output."""
    process = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await process.communicate()
    return out.decode(errors="replace")


class AdoptedLocalProcess(LauncherGroup):
    """The launcher of a kernel this server took over; ``wait`` returns once the process has exited."""

    def __init__(self, kernel_id: str, pid: int, pidfd: int, log: logging.Logger) -> None:
        self.kernel_id = kernel_id
        self.log = log
        self.stderr_tail = collections.deque(maxlen=1)  # its output went to the old server
        self._pid = pid
        self._pidfd: int | None = pidfd
        self._returncode: int | None = None
        self._exited = asyncio.Event()
        asyncio.get_running_loop().add_reader(pidfd, self._on_exit)

    @classmethod
    async def adopt(cls, kernel_id: str, pid: int, log: logging.Logger,
                    owner: str | None = None) -> AdoptedLocalProcess | None:
        """The launcher with ``pid`` if it is still this kernel's (``signal_command``'s ``owner``); None when gone."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        if not (await run_local_shell(signal_command(kernel_id, "0", [pid], owner))).split():
            os.close(pidfd)  # the pid now belongs to someone else, or the launcher is a zombie
            return None
        log.debug("Kernel %s: following launcher pid %s through a pidfd", kernel_id, pid)
        return cls(kernel_id, pid, pidfd, log)

    def _on_exit(self) -> None:
        # Not our child: its exit status went to whoever reaps it now. A signal we sent is the best we know.
        if self._returncode is None:
            self._returncode = 0
        self.close()
        self._exited.set()

    def close(self) -> None:
        """Stop following the process (it exited, or the provisioner let go of it)."""
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def returncode(self) -> int | None:
        return self._returncode if self._exited.is_set() else None

    async def wait(self) -> int:
        await self._exited.wait()
        return self._returncode or 0
