"""The launcher's main: prepare what the already spawned kernel process needs, hand it over, supervise.

Order matters for start-up speed. The kernel process is spawned first (``__main__``) and imports
ipykernel, the critical path, while this process parses its inputs, reserves the ports and writes the
connection file. asyncio and the protocol's cryptography come last (the ``Reporter`` of reporter.py),
while the kernel is still busy on the other core. Once the report is accepted the process re-executes
itself as the small supervisor (handover.py, supervisor.py), which keeps none of that in memory.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from kernelfleet.launcher.config import ConfigError, LauncherConfig, load_config
from kernelfleet.launcher.connfile import connection_info, new_hmac_key, remove_connection_file, write_connection_file
from kernelfleet.launcher.curve import CurveUnavailable, curve_keys
from kernelfleet.launcher.fastimport import prefer_ctypes_crypto
from kernelfleet.launcher.logs import EXIT_FAILURE, EXIT_USAGE, fail, log, setup_logging
from kernelfleet.launcher.ports import PortError, bind_ports, open_to_kernel, port_of
from kernelfleet.launcher.spawn import EarlyKernel
from kernelfleet.launcher.standby import is_standby
from kernelfleet.protocol.constants import COMM_KEY_BYTES
from kernelfleet.protocol.contract import KERNEL_ID, STANDBY_ID

# Signals that arrive before the event loop owns signal handling; the loop acts on them at once.
_early_signals: list[int] = []


def _remember_signal(signum: int, frame: object) -> None:
    _early_signals.append(signum)


class Prepared:
    """What the preparation hands to the ``Supervisor``."""

    def __init__(
        self,
        config: LauncherConfig,
        comm_sock: socket.socket,
        info: dict[str, Any],
        path: str,
        reservations: list[socket.socket],
    ) -> None:
        self.config, self.comm_sock, self.info, self.path = config, comm_sock, info, path
        self.reservations = reservations


def main(argv: Sequence[str] | None = None, *, kernel: EarlyKernel | None = None) -> int:
    """Run the launcher; returns the process exit status (the kernel's own, when it ran).

    ``kernel`` is the kernel process if the caller spawned it already (``python -m`` does, first thing).
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _remember_signal)
    if kernel is None:
        kernel = EarlyKernel()
    try:
        prepared = _prepare(kernel, sys.argv[1:] if argv is None else argv)
    except BaseException:  # including --help's SystemExit: the kernel process must not outlive us
        kernel.abandon()
        raise
    if not isinstance(prepared, Prepared):
        kernel.abandon()
        return prepared
    return _supervise(kernel, prepared)


def _prepare(kernel: EarlyKernel, argv: Sequence[str]) -> Prepared | int:
    """Everything before the kernel is told what to run; an exit status when the launch cannot go ahead."""
    standby = is_standby(os.environ)
    try:
        # A standby has no kernel id until it is claimed: its own id stands in (only for what precedes the claim).
        config = load_config(argv, {KERNEL_ID: os.environ[STANDBY_ID], **os.environ} if standby else os.environ)
    except ConfigError as err:
        return fail(str(err), EXIT_USAGE)
    setup_logging(config.log_level)
    if _early_signals:
        return 128 + _early_signals[0]
    params: dict[str, Any] = {}
    if standby:  # a warm pool's standby: wait for the claim that makes it this kernel (standby.py)
        from kernelfleet.launcher.standby import StandbyEnded, await_claim

        try:
            config, params = await_claim(config, os.environ, kernel.bound_fd, _early_signals)
        except StandbyEnded as err:
            if err.status == 0:
                log.info("%s", err)
                return 0
            return fail(str(err), err.status)
    kid = config.kernel_id
    try:
        curve = curve_keys(config.transport_encryption, kid)
    except CurveUnavailable as err:
        return fail(str(err), EXIT_FAILURE)
    try:
        sockets = bind_ports(config.kernel_ip, config.port_range)
    except PortError as err:
        return fail(f"kernel {kid}: {err}", EXIT_FAILURE)
    ports = [port_of(s) for s in sockets]
    info = connection_info(config.kernel_ip, ports[:5], new_hmac_key(), curve)
    try:
        path = write_connection_file(info)
    except OSError as err:
        for sock in sockets:
            sock.close()
        return fail(f"kernel {kid}: cannot write the connection file: {err}", EXIT_FAILURE)
    log.info(
        "kernel %s: ports chosen and reserved on %s: shell %d, iopub %d, stdin %d, control %d, hb %d, comm %d",
        kid,
        config.kernel_ip,
        *ports,
    )
    for sock in sockets[:5]:
        open_to_kernel(sock)  # the kernel binds these on top of our still-bound sockets
    params |= {
        "connection_file": path,
        "kernel_class_name": config.kernel_class_name,
        "spark_mode": config.spark_init_mode,
        "cluster_type": config.cluster_type,
        "curve": curve is not None,
    }
    if kernel.send(params):  # if not, the kernel process already died; the lifecycle reports its status
        log.info("kernel %s: kernel started (pid %d, class %s, %s)", kid, kernel.pid, config.kernel_class_name,
                 "CurveZMQ-encrypted" if curve else "unencrypted")
    return Prepared(config, sockets[5], info, path, sockets[:5])


def _supervise(kernel: EarlyKernel, prepared: Prepared) -> int:
    """Report (asyncio and crypto load while the kernel boots), then become the small supervisor."""
    prefer_ctypes_crypto()
    from kernelfleet.launcher.comm_server import BACKLOG
    from kernelfleet.launcher.handover import Handover, exec_supervisor
    from kernelfleet.launcher.reporter import Reporter
    from kernelfleet.launcher.supervisor import supervise

    config = prepared.config
    comm_key = os.urandom(COMM_KEY_BYTES)
    prepared.comm_sock.listen(BACKLOG)  # the server's first requests queue until the supervisor serves them
    comm_port = port_of(prepared.comm_sock)
    try:
        reporter = Reporter(kernel.pid, config, comm_port, comm_key, prepared.info, early_signals=_early_signals,
                            bound_fd=kernel.bound_fd)
        stop = reporter.run()
    except BaseException:
        kernel.abandon()
        remove_connection_file(prepared.path)
        raise
    handover = Handover(
        kernel_pid=kernel.pid,
        kernel_id=config.kernel_id,
        comm_fd=prepared.comm_sock.detach(),
        comm_key=comm_key,
        reservation_fds=[sock.detach() for sock in prepared.reservations],
        connection_file=prepared.path,
        cluster_type=config.cluster_type,
        spark_init_mode=config.spark_init_mode,
        log_level=config.log_level,
        stop=stop,
    )
    try:
        exec_supervisor(handover)
    except OSError as err:
        log.warning("kernel %s: cannot start the small supervisor (%s); supervising from this process",
                    config.kernel_id, err)
    return supervise(handover)
