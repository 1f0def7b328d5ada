"""The launcher's long-lived supervisor: serve the comm port, stop the kernel when asked, exit with its status.

It runs in the launcher's own process after the reporting phase re-executed it (handover.py), and lives
as long as the kernel, next to every kernel; so it imports only small standard modules and runs on
reactor.py instead of asyncio (issue 15, section 3: its share of memory is a few MB, not 25).

Every path ends the same way: the kernel exits (by itself, or because we signalled it), the comm port
closes, the kernel's process group is swept and the connection file removed. Nothing polls: the
kernel's exit arrives as SIGCHLD, requests through the comm socket, stop requests as signals.
"""

from __future__ import annotations

import os
import signal
import socket

from kernelfleet.launcher.comm_server import CommServer
from kernelfleet.launcher.connfile import remove_connection_file
from kernelfleet.launcher.handover import Handover, receive, release_signals
from kernelfleet.launcher.kernelproc import KernelProcess
from kernelfleet.launcher.logs import log, setup_logging
from kernelfleet.launcher.reactor import Reactor

# How long the kernel gets between SIGTERM and SIGKILL when the launcher itself is told to stop:
# short, so `docker stop` and a server's terminate finish well inside a second.
STOP_GRACE = 0.5
# Same, after the server's shutdown grace ran out or the report was refused.
TERMINATE_GRACE = 2.0


class Supervisor:
    def __init__(self, handover: Handover) -> None:
        self.handover = handover
        self.kernel_id = handover.kernel_id
        self.kernel = KernelProcess(handover.kernel_pid)
        self.reactor = Reactor()
        # Held until the launcher exits: the heartbeat thread binds its port after the report (see kernel.py).
        self._reservations = [socket.socket(fileno=fd) for fd in handover.reservation_fds]
        self._comm_sock = socket.socket(fileno=handover.comm_fd)
        self._exit_override: int | None = None

    def run(self) -> int:
        comm = CommServer(self.handover.comm_key, self, kernel_id=self.kernel_id)
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.reactor.add_signal_handler(sig, lambda sig=sig: self._on_signal(sig))
            self.reactor.add_signal_handler(signal.SIGCHLD, self._child_exited)
            release_signals()
            if self.handover.stop is not None:
                self._stop_with(*self.handover.stop)
            comm.start(self._comm_sock, self.reactor)
            self._child_exited()  # it may have exited before the handlers were in place
            self.reactor.run()
        finally:
            comm.close()
            self.reactor.close()
            # Also reached on an unexpected error: never leave a kernel behind.
            self.kernel.kill_and_reap()
            self.kernel.sweep()
            remove_connection_file(self.handover.connection_file)
            for sock in self._reservations:
                sock.close()
        status = self.kernel.poll()
        assert status is not None
        final = self._exit_override if self._exit_override is not None else status
        log.info("kernel %s: stopped (kernel exit status %d, launcher exits %d)", self.kernel_id, status, final)
        return final

    def _child_exited(self) -> None:
        if os.getpid() == 1:
            self._reap_orphans()
        if self.kernel.poll() is not None:
            self.reactor.stop()

    def _reap_orphans(self) -> None:
        """As PID 1 (a container's init) the launcher inherits every orphaned process; reap them so that
        zombies do not pile up. The kernel itself is left to ``poll`` (peeked, never reaped here)."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == self.kernel.pid:
                return
            os.waitpid(info.si_pid, os.WNOHANG)

    # -- stopping ------------------------------------------------------------------------------

    def _stop_with(self, status: int, grace: float) -> None:
        if self._exit_override is None:
            self._exit_override = status
        self._stop(grace)

    def _stop(self, grace: float, *, wait_first: float = 0.0) -> None:
        """Optionally let the kernel exit by itself, then SIGTERM, then SIGKILL after ``grace``."""
        if wait_first > 0:
            self.reactor.call_later(wait_first, lambda: self._stop(grace))
            return
        self.kernel.signal(signal.SIGTERM)
        self.reactor.call_later(grace, lambda: self._kill_after(grace))

    def _kill_after(self, grace: float) -> None:
        if self.kernel.alive:
            log.info("kernel %s: still running %.1f s after SIGTERM; killing it", self.kernel_id, grace)
            self.kernel.signal(signal.SIGKILL)

    def _on_signal(self, signum: int) -> None:
        log.info("kernel %s: launcher got %s; stopping the kernel", self.kernel_id, signal.Signals(signum).name)
        self._stop_with(128 + signum, STOP_GRACE)

    # -- CommActions (called by the comm server for authenticated requests only) ----------------

    def alive(self) -> bool:
        return self.kernel.alive

    def interrupt(self) -> None:
        log.info("kernel %s: interrupted", self.kernel_id)
        self.kernel.interrupt()
        if self.handover.cluster_type == "spark" and self.handover.spark_init_mode != "none":
            self.kernel.signal(signal.SIGUSR2, group=False)  # the kernel cancels running Spark jobs

    def terminate(self) -> None:
        log.info("kernel %s: terminate requested", self.kernel_id)
        self.kernel.signal(signal.SIGTERM)

    def kill(self) -> None:
        log.info("kernel %s: kill requested", self.kernel_id)
        self.kernel.signal(signal.SIGKILL)

    def shutdown(self, grace: float) -> None:
        log.info("kernel %s: shutdown requested (grace %.1f s)", self.kernel_id, grace)
        self._stop(TERMINATE_GRACE, wait_first=grace)

    def deliver(self, name: str) -> None:
        """Protocol 2.2's signal op: ``name`` is already one of the allowed names (comm_server checked it)."""
        log.info("kernel %s: %s requested", self.kernel_id, name)
        self.kernel.deliver(signal.Signals[name])


def supervise(handover: Handover) -> int:
    """Supervise in this process (the exec's fallback, and the exec'd supervisor's body)."""
    return Supervisor(handover).run()


def main(handover_fd: int) -> int:
    """Entry point of the exec'd supervisor (handover.py's ``python -c`` program)."""
    handover = receive(handover_fd)
    setup_logging(handover.log_level)
    return supervise(handover)
