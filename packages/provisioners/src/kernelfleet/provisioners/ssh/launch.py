"""Running ``ssh_command.LAUNCH_SCRIPT`` on a host and watching it until the kernel has reported.

The launch channel is the event source for an early death: the remote shell waits on the launcher
and writes ``KF-EXITED`` the moment it exits, so no polling is needed. Once the report arrived the
channel is closed (``detach``), which ends the remote watcher and leaves the detached launcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncssh

from kernelfleet.provisioners.ssh.command import ERROR, EXITED, STARTED
from kernelfleet.provisioners.ssh.connections import HostUnavailable

MAX_NOISE_LINES = 20


class RemoteLaunch:
    """A launcher started on ``host``: its pid (also its process group), its log file, and its watch."""

    def __init__(
        self, kernel_id: str, host: str, process: asyncssh.SSHClientProcess[bytes], pid: int, log_path: str,
        log: logging.Logger, slot: asyncio.Semaphore,
    ) -> None:
        self.kernel_id = kernel_id
        self._slot: asyncio.Semaphore | None = slot
        self.host = host
        self.process = process
        self.pid = pid
        self.log_path = log_path
        self.log = log
        self.exit_code: int | None = None
        self.tail = ""
        self._exited = asyncio.get_running_loop().create_future()
        self._watch = asyncio.ensure_future(self._read_exit())

    @classmethod
    async def start(
        cls, conn: asyncssh.SSHClientConnection, host: str, kernel_id: str, command: str, env_payload: bytes,
        timeout: float, log: logging.Logger, slot: asyncio.Semaphore,
    ) -> RemoteLaunch:
        """Open the channel, send the environment, return once the launcher runs.

        Raises HostUnavailable when the host could not run the script at all (the caller tries the
        next host): a channel that cannot be opened, a missing tool, a session that ends first.
        ``slot`` (one of the connection's session slots) is held until the launch is detached.
        """
        try:
            async with asyncio.timeout(timeout):  # a burst of launches queues here; a wedged host must not hang one
                await slot.acquire()
        except TimeoutError:
            raise HostUnavailable(f"every SSH session to {host} stayed busy for {timeout:g}s") from None
        try:
            return await cls._start(conn, host, kernel_id, command, env_payload, timeout, log, slot)
        except BaseException:
            slot.release()
            raise

    @classmethod
    async def _start(
        cls, conn: asyncssh.SSHClientConnection, host: str, kernel_id: str, command: str, env_payload: bytes,
        timeout: float, log: logging.Logger, slot: asyncio.Semaphore,
    ) -> RemoteLaunch:
        try:
            process = await conn.create_process(command, encoding=None, stderr=asyncssh.STDOUT)
        except (asyncssh.Error, OSError) as err:
            raise HostUnavailable(f"cannot open an SSH session on {host}: {getattr(err, 'reason', err)}") from None
        noise: list[str] = []
        try:
            process.stdin.write(env_payload)
            async with asyncio.timeout(timeout):
                while True:
                    raw = await process.stdout.readline()
                    if not raw:
                        status = process.exit_status
                        raise HostUnavailable(
                            f"the launch script on {host} ended before starting the launcher (exit status "
                            f"{status})" + (": " + " | ".join(noise) if noise else "")
                        )
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if line.startswith(STARTED + " "):
                        pid_text, _, log_path = line[len(STARTED) + 1:].partition(" ")
                        break
                    if line.startswith(ERROR + " "):
                        raise HostUnavailable(f"{host}: {line[len(ERROR) + 1:]}")
                    if len(noise) < MAX_NOISE_LINES:
                        noise.append(line)
        except TimeoutError:
            process.close()
            raise HostUnavailable(f"the launch script on {host} did not start within {timeout:g}s") from None
        except (asyncssh.Error, OSError) as err:
            process.close()
            raise HostUnavailable(f"SSH session on {host} failed: {getattr(err, 'reason', err)}") from None
        except BaseException:
            process.close()
            raise
        log.debug("Kernel %s: launcher started on %s as pid %s, log %s", kernel_id, host, pid_text, log_path)
        return cls(kernel_id, host, process, int(pid_text), log_path, log, slot)

    async def _read_exit(self) -> None:
        try:
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith(EXITED + " "):
                    self.exit_code = int(line[len(EXITED) + 1:] or -1)
                    self.tail = (await self.process.stdout.read()).decode("utf-8", "replace").strip()
                    self._exited.set_result(self.exit_code)
                    return
                self.log.debug("Kernel %s | %s: %s", self.kernel_id, self.host, line)
        except (asyncssh.Error, OSError, ValueError) as err:
            self.log.debug("Kernel %s: watch of the launch on %s ended: %s", self.kernel_id, self.host, err)

    async def exited(self) -> int:
        """Returns the launcher's exit code once it has exited; waits forever while it runs."""
        return await asyncio.shield(self._exited)

    def describe_exit(self) -> str:
        code = self.exit_code
        reason = f"killed by signal {code - 128}" if code is not None and code > 128 else f"exited with code {code}"
        where = f"launcher (pid {self.pid} on {self.host}) {reason}"
        return where + (f"; its last output:\n{self.tail}" if self.tail else "")

    def release_slot(self) -> None:
        """Give the session slot back early (before signalling this launch, which needs a slot itself)."""
        if self._slot is not None:
            self._slot.release()
            self._slot = None

    async def detach(self) -> None:
        """Stop watching; the remote watcher ends with the channel, the launcher keeps running."""
        self.process.close()
        self.release_slot()
        self._watch.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._watch
        if not self._exited.done():
            self._exited.cancel()


async def run_command(
    conn: asyncssh.SSHClientConnection, command: str, timeout: float, slot: asyncio.Semaphore
) -> str:
    """Run a short helper command (signal, sweep) in one of the connection's session slots; returns stdout."""
    async with asyncio.timeout(timeout), slot:
        result = await conn.run(command, check=False, encoding="utf-8", errors="replace")
    return str(result.stdout or "")
