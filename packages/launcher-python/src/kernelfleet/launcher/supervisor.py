"""The supervisor's life after the spawn: report, serve the comm port, stop the kernel, exit with its status.

The report goes out only once the kernel has said which ports it has bound (kernel.py): a kernel that
dies first is never reported, and the server fails the launch with the kernel's own output instead.

Every path ends the same way: the kernel exits (by itself, or because we signalled it), the comm port
closes, the kernel's process group is swept and the connection file removed. Nothing polls: the
kernel's exit arrives through its pidfd, requests through the comm socket, stop requests as signals.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from typing import Any

from kernelfleet.launcher._version import __version__
from kernelfleet.launcher.comm_server import CommServer
from kernelfleet.launcher.config import LauncherConfig
from kernelfleet.launcher.connfile import KERNEL_PORT_NAMES, remove_connection_file
from kernelfleet.launcher.kernelproc import KernelProcess
from kernelfleet.launcher.main import EXIT_FAILURE, EXIT_USAGE, fail, log
from kernelfleet.launcher.report import ReportFailed, send_report
from kernelfleet.protocol import seal_report
from kernelfleet.protocol.constants import COMM_KEY_BYTES
from kernelfleet.protocol.encoding import b64encode
from kernelfleet.protocol.keys import load_public_key
from kernelfleet.protocol.report import KERNEL_ID_PATTERN

# How long the kernel gets between SIGTERM and SIGKILL when the launcher itself is told to stop:
# short, so `docker stop` and a server's terminate finish well inside a second.
STOP_GRACE = 0.5
# Same, after the server's shutdown grace ran out or the report was refused.
TERMINATE_GRACE = 2.0
WILDCARD_IPS = ("0.0.0.0", "::")
MAX_BOUND_LINE = 1024


class InvalidInput(ValueError):
    """An input only the protocol can validate (kernel id, PUBLIC_KEY) turned out invalid after the spawn."""


class Supervisor:
    def __init__(
        self,
        kernel_pid: int,
        config: LauncherConfig,
        comm_sock: socket.socket,
        info: dict[str, Any],
        connection_file: str,
        *,
        early_signals: list[int],
        bound_fd: int,
        reservations: list[socket.socket],
    ) -> None:
        self.config = config
        self.kernel = KernelProcess(kernel_pid)
        self.comm_sock = comm_sock
        self.comm_port = int(comm_sock.getsockname()[1])
        self.info = info
        self.connection_file = connection_file
        self.comm_key = os.urandom(COMM_KEY_BYTES)
        self._early_signals = early_signals
        self._bound_fd = bound_fd
        # Held until the launcher exits: the heartbeat thread binds its port after the report (see kernel.py).
        self._reservations = reservations
        self._exit_override: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- entry ---------------------------------------------------------------------------------

    def run_forever(self) -> int:
        try:
            return asyncio.run(self.run())
        finally:
            # Also reached on an unexpected error: never leave a kernel behind.
            self.kernel.kill_and_reap()
            self.kernel.sweep()
            remove_connection_file(self.connection_file)
            for sock in self._reservations:
                sock.close()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        exited = self.kernel.wait()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        if os.getpid() == 1:
            loop.add_signal_handler(signal.SIGCHLD, self._reap_orphans)
        for sig in self._early_signals:
            self._on_signal(sig)
        comm = CommServer(self.comm_key, self, kernel_id=self.config.kernel_id)
        try:
            await comm.start(self.comm_sock)
            self._spawn(self._report())
            status = await exited
        finally:
            comm.close()
            for task in self._tasks:
                task.cancel()
        final = self._exit_override if self._exit_override is not None else status
        log.info("kernel %s: stopped (kernel exit status %d, launcher exits %d)", self.config.kernel_id, status, final)
        return final

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the report ----------------------------------------------------------------------------

    def _validate(self) -> None:
        if not KERNEL_ID_PATTERN.match(self.config.kernel_id):
            raise InvalidInput(
                f"KERNEL_ID {self.config.kernel_id!r} is not a valid kernel id "
                "(1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit)"
            )
        try:
            load_public_key(self.config.public_key)
        except (ValueError, TypeError, IndexError) as err:
            raise InvalidInput(f"PUBLIC_KEY is not a base64 DER RSA public key: {err}") from None

    def _seal(self, local_ip: str) -> bytes:
        cfg = self.config
        ip = local_ip if cfg.kernel_ip in WILDCARD_IPS else cfg.kernel_ip
        report = dict(
            self.info,
            ip=ip,
            comm_port=self.comm_port,
            comm_key=b64encode(self.comm_key),
            launch_token=cfg.launch_token,
            kernel_id=cfg.kernel_id,
            pid=os.getpid(),
            pgid=self.kernel.pgid,
            launcher=f"python/{__version__}",
        )
        return seal_report(report, kernel_id=cfg.kernel_id, public_key_b64=cfg.public_key)

    async def _report(self) -> None:
        kid = self.config.kernel_id
        try:
            self._validate()
        except InvalidInput as err:
            fail(str(err), EXIT_USAGE)
            await self._stop_with(EXIT_USAGE, TERMINATE_GRACE)
            return
        bound = await self._kernel_bound_ports()
        if bound is None:
            return
        self.info.update(bound)
        try:
            await send_report(self.config.response_address, self._seal)
        except ReportFailed as err:
            log.error("kernel %s: %s; stopping the kernel", kid, err)
            await self._stop_with(EXIT_FAILURE, TERMINATE_GRACE)
            return
        log.info("kernel %s: report accepted by %s", kid, self.config.response_address)

    async def _kernel_bound_ports(self) -> dict[str, int] | None:
        """The kernel's line naming the ports it holds; None, having logged why, if it never comes."""
        kid = self.config.kernel_id
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_BOUND_LINE)
        pipe = os.fdopen(self._bound_fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        try:
            line = await reader.readline()
        except ValueError:
            line = b""
        finally:
            transport.close()
        try:
            ports = json.loads(line) if line else None
        except ValueError:
            ports = None
        if isinstance(ports, dict) and set(ports) == set(KERNEL_PORT_NAMES) and all(
            isinstance(p, int) for p in ports.values()
        ):
            log.debug("kernel %s: kernel bound its ports %s", kid, sorted(ports.values()))
            return ports
        if self.kernel.alive:
            log.error("kernel %s: the kernel did not say which ports it bound; stopping it, no report sent", kid)
            await self._stop_with(EXIT_FAILURE, TERMINATE_GRACE)
        else:
            log.error("kernel %s: the kernel exited before binding its ports (its output is above); no report", kid)
        return None

    # -- stopping ------------------------------------------------------------------------------

    async def _stop_with(self, status: int, grace: float) -> None:
        if self._exit_override is None:
            self._exit_override = status
        await self._stop(grace)

    async def _stop(self, grace: float, *, wait_first: float = 0.0) -> None:
        """Optionally let the kernel exit by itself, then SIGTERM, then SIGKILL after ``grace``."""
        exited = self.kernel.wait()
        if wait_first > 0 and await self._exits_within(exited, wait_first):
            return
        self.kernel.signal(signal.SIGTERM)
        if not await self._exits_within(exited, grace):
            log.info("kernel %s: still running %.1f s after SIGTERM; killing it", self.config.kernel_id, grace)
            self.kernel.signal(signal.SIGKILL)

    @staticmethod
    async def _exits_within(exited: asyncio.Future[int], seconds: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(exited), seconds)
            return True
        except TimeoutError:
            return False

    def _reap_orphans(self) -> None:
        """As PID 1 (a container's init) the launcher inherits every orphaned process; reap them so that
        zombies do not pile up. The kernel itself is left to its pidfd watcher (peeked, never reaped here)."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == self.kernel.pid:
                return
            os.waitpid(info.si_pid, os.WNOHANG)

    def _on_signal(self, signum: int) -> None:
        log.info("kernel %s: launcher got %s; stopping the kernel", self.config.kernel_id, signal.Signals(signum).name)
        self._spawn(self._stop_with(128 + signum, STOP_GRACE))

    # -- CommActions (called by the comm server for authenticated requests only) ----------------

    def alive(self) -> bool:
        return self.kernel.alive

    def interrupt(self) -> None:
        log.info("kernel %s: interrupted", self.config.kernel_id)
        self.kernel.signal(signal.SIGINT)
        if self.config.cluster_type == "spark" and self.config.spark_init_mode != "none":
            self.kernel.signal(signal.SIGUSR2, group=False)  # the kernel cancels running Spark jobs

    def terminate(self) -> None:
        log.info("kernel %s: terminate requested", self.config.kernel_id)
        self.kernel.signal(signal.SIGTERM)

    def kill(self) -> None:
        log.info("kernel %s: kill requested", self.config.kernel_id)
        self.kernel.signal(signal.SIGKILL)

    def shutdown(self, grace: float) -> None:
        log.info("kernel %s: shutdown requested (grace %.1f s)", self.config.kernel_id, grace)
        self._spawn(self._stop(TERMINATE_GRACE, wait_first=grace))
