"""A launcher running as a local process: started (a child of this server) or adopted (``adopted_process``),
watched and stopped without blocking."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal


class LauncherGroup:
    """A local launcher leading its own session, so one signal to its group reaches the launcher and its kernel.

    The distributed provisioner drives both kinds (started here, adopted after a server restart) through this.
    """

    kernel_id: str
    stderr_tail: collections.deque[str]

    @property
    def pid(self) -> int:
        raise NotImplementedError

    @property
    def returncode(self) -> int | None:
        raise NotImplementedError

    async def wait(self) -> int:
        """Until the launcher has exited (and, for a child, been reaped): its exit status."""
        raise NotImplementedError

    def describe_exit(self, code: int) -> str:
        reason = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        tail = "\n".join(self.stderr_tail)
        return f"launcher (pid {self.pid}) {reason}" + (f"; its last output:\n{tail}" if tail else "")

    def signal_group(self, signum: int) -> bool:
        """Signal the launcher's whole process group; False when it is already gone."""
        if self.returncode is not None:
            return False
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            return False
        except PermissionError:  # an impersonated launcher (sudo, then another user): only its comm port stops it
            return False
        return True

    async def stop(self, grace: float = 2.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns once the process has exited."""
        if self.signal_group(signal.SIGTERM):
            try:
                await asyncio.wait_for(self.wait(), grace)
            except TimeoutError:
                self.signal_group(signal.SIGKILL)
        await self.wait()


class LocalLauncherProcess(LauncherGroup):
    """A launcher this server started as its child."""

    def __init__(self, kernel_id: str, process: asyncio.subprocess.Process, log: logging.Logger) -> None:
        self.kernel_id = kernel_id
        self.process = process
        self.log = log
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._drain = asyncio.ensure_future(self._forward_output())

    @classmethod
    async def start(
        cls, kernel_id: str, cmd: list[str], env: dict[str, str], cwd: str | None, log: logging.Logger
    ) -> LocalLauncherProcess:
        try:
            process = await asyncio.create_subprocess_exec(
                *cmd,
                env=env,
                cwd=cwd or None,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as err:
            raise RuntimeError(f"Kernel {kernel_id}: cannot start {cmd[0]!r}: {err}") from None
        log.debug("Kernel %s: launcher started as pid %s", kernel_id, process.pid)
        return cls(kernel_id, process, log)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def _forward_output(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.stderr_tail.append(line)
                self.log.debug("Kernel %s | %s", self.kernel_id, line)

    async def wait(self) -> int:
        code = await self.process.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._drain), 1.0)
        return code
