"""The launcher's reporting phase: wait for the kernel's ports, send the sealed report, then hand over.

The report goes out only once the kernel has said which ports it has bound (kernel.py): a kernel that
dies first is never reported, and the server fails the launch with the kernel's own output instead.
This phase needs asyncio and the protocol's cryptography; the long-lived supervisor needs neither, so
``run`` ends with the instruction for the supervisor (handover.py): nothing to do but supervise, or stop
the kernel and exit with a given status (the report failed, the launcher got SIGTERM meanwhile...).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

from kernelfleet.launcher._version import __version__
from kernelfleet.launcher.config import LauncherConfig
from kernelfleet.launcher.connfile import KERNEL_PORT_NAMES
from kernelfleet.launcher.handover import hold_signals
from kernelfleet.launcher.kernel import WARM_LINE
from kernelfleet.launcher.kernelproc import KernelProcess
from kernelfleet.launcher.logs import EXIT_FAILURE, EXIT_USAGE, fail, log
from kernelfleet.launcher.report import ReportFailed, send_report
from kernelfleet.launcher.supervisor import STOP_GRACE, TERMINATE_GRACE
from kernelfleet.protocol import seal_report
from kernelfleet.protocol.encoding import b64encode
from kernelfleet.protocol.keys import load_public_key
from kernelfleet.protocol.report import KERNEL_ID_PATTERN

WILDCARD_IPS = ("0.0.0.0", "::")
MAX_BOUND_LINE = 1024

Stop = tuple[int, float]  # (the launcher's exit status, the kernel's grace between SIGTERM and SIGKILL)


class InvalidInput(ValueError):
    """An input only the protocol can validate (kernel id, PUBLIC_KEY) turned out invalid after the spawn."""


class Reporter:
    def __init__(
        self,
        kernel_pid: int,
        config: LauncherConfig,
        comm_port: int,
        comm_key: bytes,
        info: dict[str, Any],
        *,
        early_signals: list[int],
        bound_fd: int,
    ) -> None:
        self.config = config
        self.kernel = KernelProcess(kernel_pid)
        self.comm_port = comm_port
        self.comm_key = comm_key
        self.info = info
        self._early_signals = early_signals
        self._bound_fd = bound_fd
        self._stop: Stop | None = None
        self._task: asyncio.Task[None] | None = None

    def run(self) -> Stop | None:
        """Report; the stop the supervisor must carry out, or None. Returns with the supervisor's signals held."""
        return asyncio.run(self._run())

    async def _run(self) -> Stop | None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self._task = asyncio.ensure_future(self._report())
        for sig in self._early_signals:
            self._on_signal(sig)
        pidfd = self._watch_kernel_exit(loop)
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        finally:
            if pidfd is not None:
                loop.remove_reader(pidfd)
                os.close(pidfd)
            hold_signals()
            for _ in range(3):  # a signal already written to asyncio's wake-up pipe still reaches _on_signal
                await asyncio.sleep(0)
        return self._stop

    def _watch_kernel_exit(self, loop: asyncio.AbstractEventLoop) -> int | None:
        """A kernel that dies mid-report ends this phase at once (the supervisor then exits with its status)."""
        try:
            pidfd = os.pidfd_open(self.kernel.pid)
        except (AttributeError, OSError):
            return None  # Linux < 5.3: the report goes ahead, and the supervisor finds the kernel gone
        loop.add_reader(pidfd, self._cancel)
        return pidfd

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _stop_with(self, status: int, grace: float) -> None:
        if self._stop is None:
            self._stop = (status, grace)
        self._cancel()

    def _on_signal(self, signum: int) -> None:
        log.info("kernel %s: launcher got %s; stopping the kernel", self.config.kernel_id, signal.Signals(signum).name)
        self._stop_with(128 + signum, STOP_GRACE)

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
            self._stop_with(EXIT_USAGE, TERMINATE_GRACE)
            return
        bound = await self._kernel_bound_ports()
        if bound is None:
            return
        self.info.update(bound)
        try:
            await send_report(self.config.response_address, self._seal)
        except ReportFailed as err:
            log.error("kernel %s: %s; stopping the kernel", kid, err)
            self._stop_with(EXIT_FAILURE, TERMINATE_GRACE)
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
            if line == WARM_LINE:  # the kernel's imports are done (kernel.py); its ports come next
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
        if self.kernel.running():
            log.error("kernel %s: the kernel did not say which ports it bound; stopping it, no report sent", kid)
            self._stop_with(EXIT_FAILURE, TERMINATE_GRACE)
        else:
            log.error("kernel %s: the kernel exited before binding its ports (its output is above); no report", kid)
        return None
