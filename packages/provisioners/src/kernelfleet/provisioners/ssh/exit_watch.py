"""A remote launcher's exit, reported by its host the moment it happens: one watch channel per host.

Once a kernel has reported, its launch channel is closed (``ssh_launch``) and nothing tells the server that the
launcher died; ``DistributedProvisioner.wait`` then had to ask again and again. Here one SSH session per host
runs ``WATCH_SCRIPT`` (bash: ``read -t`` is its only timer, so it forks nothing while it watches): the server
writes the pids to watch on its stdin, the host prints ``KF-GONE <pid>`` when one has exited (no ``/proc``
entry, or a zombie), and the waiting kernels are woken at once.

Only the host's word that a pid is gone counts: a channel that breaks (host down, sshd restarted, connection
dropped) wakes its waiters with "unknown", and they decide through ``poll()``, which never takes an
unreachable host for a dead kernel. The channel lives while someone waits and is closed with its last waiter,
so a host nobody waits on keeps no session open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from typing import ClassVar

import asyncssh

from kernelfleet.provisioners.ssh.connections import HostUnavailable, SSHSettings, connection_pool

GONE = "KF-GONE"
CHECK_SECONDS = 0.2  # how often the host looks at its watched pids (the read timeout: no process is started)

# ``read -t`` that times out part-way through a line keeps what it read in kf_line and consumes it: under CPU load
# bash can be descheduled between the bytes of "12345\n", and without kf_part the pid would be lost (and "45" watched
# instead), leaving its waiter asleep for good. kf_part carries the partial input over to the next read.
WATCH_SCRIPT = r"""declare -A kf_watch=()
kf_part=
while :; do
  if IFS= read -r -t __CHECK__ kf_line; then
    kf_line=$kf_part$kf_line kf_part=
    case $kf_line in ''|*[!0-9]*) ;; *) kf_watch[$kf_line]=1 ;; esac
  elif [ $? -le 128 ]; then
    exit 0
  else
    kf_part=$kf_part$kf_line
  fi
  for kf_pid in "${!kf_watch[@]}"; do
    kf_stat=
    { IFS= read -r kf_stat <"/proc/$kf_pid/stat"; } 2>/dev/null
    case $kf_stat in ''|*') Z '*) echo "KF-GONE $kf_pid"; unset "kf_watch[$kf_pid]" ;; esac
  done
done
""".replace("__CHECK__", str(CHECK_SECONDS))

log = logging.getLogger("kernelfleet.ssh")


def watch_command() -> str:
    """The watch channel's command line: a constant script, nothing interpolated."""
    return shlex.join(["exec", "bash", "-c", WATCH_SCRIPT])


class HostExitWatch:
    """The watch channel of one host (and one set of SSH settings) in one event loop."""

    _instances: ClassVar[dict[tuple[asyncio.AbstractEventLoop, str, SSHSettings], HostExitWatch]] = {}

    def __init__(self, host: str, settings: SSHSettings) -> None:
        self.host = host
        self.settings = settings
        self.waiters: dict[int, list[asyncio.Future[bool]]] = {}
        self._process: asyncssh.SSHClientProcess[str] | None = None
        self._opening: asyncio.Task[asyncssh.SSHClientProcess[str]] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._slot: asyncio.Semaphore | None = None

    @classmethod
    def of(cls, host: str, settings: SSHSettings) -> HostExitWatch:
        loop = asyncio.get_running_loop()
        for stale in [key for key in cls._instances if key[0].is_closed()]:
            del cls._instances[stale]
        key = (loop, host, settings)
        watch = cls._instances.get(key)
        if watch is None:
            watch = cls._instances[key] = cls(host, settings)
        return watch

    async def until_gone(self, pid: int) -> bool:
        """Wait until the host says ``pid`` has exited (True) or the watch broke (False: nothing is known).

        Raises HostUnavailable (or asyncssh's errors) when no watch channel can be opened at all.
        """
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(pid, []).append(waiter)
        try:
            process = await self._open()
            process.stdin.write(f"{pid}\n")
            return await waiter
        finally:
            self._forget(pid, waiter)

    def _forget(self, pid: int, waiter: asyncio.Future[bool]) -> None:
        futures = self.waiters.get(pid, [])
        if waiter in futures:
            futures.remove(waiter)
        if not futures:
            self.waiters.pop(pid, None)
        if not self.waiters:
            self._close()

    async def _open(self) -> asyncssh.SSHClientProcess[str]:
        if self._process is not None:
            return self._process
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._start())
        opening = self._opening
        try:
            return await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening is opening and (opening.cancelled() or opening.exception()):
                self._opening = None

    async def _start(self) -> asyncssh.SSHClientProcess[str]:
        pool = connection_pool()
        conn = await pool.connect(self.host, self.settings)
        slot = pool.sessions(self.host, self.settings)
        await slot.acquire()
        try:
            process = await conn.create_process(watch_command(), encoding="utf-8", errors="replace")
        except (asyncssh.Error, OSError) as err:
            slot.release()
            raise HostUnavailable(f"cannot open the exit watch on {self.host}: {getattr(err, 'reason', err)}") from None
        self._slot, self._process, self._opening = slot, process, None
        self._reader = asyncio.ensure_future(self._read(process))
        log.debug("exit watch on %s opened", self.host)
        return process

    async def _read(self, process: asyncssh.SSHClientProcess[str]) -> None:
        try:
            async for line in process.stdout:
                word, _, pid = line.strip().partition(" ")
                if word == GONE and pid.isdigit():
                    for waiter in self.waiters.get(int(pid), []):
                        if not waiter.done():
                            waiter.set_result(True)
        except (asyncssh.Error, OSError) as err:
            log.debug("exit watch on %s broke: %s", self.host, err)
        if self._process is process:  # the channel ended by itself: everyone re-checks through poll()
            self._release_channel()
            for futures in self.waiters.values():
                for waiter in futures:
                    if not waiter.done():
                        waiter.set_result(False)

    def _release_channel(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.close()
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.release()

    def _close(self) -> None:
        """The last waiter left: end the channel (the script exits on end of input)."""
        self._release_channel()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
        if self._opening is not None and not self._opening.done():
            self._opening.add_done_callback(lambda task: self._close_late(task))

    def _close_late(self, task: asyncio.Task[asyncssh.SSHClientProcess[str]]) -> None:
        """A channel that finished opening after its last waiter left."""
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()
            if not self.waiters:
                self._release_channel()
                if self._reader is not None:
                    self._reader.cancel()
                    self._reader = None
