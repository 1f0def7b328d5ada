"""The launcher's main: prepare what the already spawned kernel process needs, hand it over, supervise.

Order matters for start-up speed. The kernel process is spawned first (``__main__``) and imports
ipykernel, the critical path, while this process parses its inputs, reserves the ports and writes the
connection file. asyncio and the protocol's cryptography come last (the ``Supervisor`` of supervisor.py),
while the kernel is still busy on the other core.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from kernelfleet.launcher.config import ConfigError, LauncherConfig, load_config
from kernelfleet.launcher.connfile import connection_info, new_hmac_key, write_connection_file
from kernelfleet.launcher.curve import CurveUnavailable, curve_keys
from kernelfleet.launcher.fastimport import prefer_ctypes_crypto
from kernelfleet.launcher.ports import PortError, bind_ports, open_to_kernel, port_of
from kernelfleet.launcher.spawn import EarlyKernel

EXIT_USAGE = 2
EXIT_FAILURE = 1
PROG = "kernelfleet-launcher"

log = logging.getLogger("kernelfleet.launcher")

# Signals that arrive before the event loop owns signal handling; the loop acts on them at once.
_early_signals: list[int] = []


def _remember_signal(signum: int, frame: object) -> None:
    _early_signals.append(signum)


def fail(message: str, status: int) -> int:
    """Print the launcher's one-line error and return the exit status to use."""
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return status


def _setup_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(levelname).1s %(asctime)s %(name)s] %(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


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
    try:
        config = load_config(argv, os.environ)
    except ConfigError as err:
        return fail(str(err), EXIT_USAGE)
    _setup_logging(config.log_level)
    if _early_signals:
        return 128 + _early_signals[0]
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
    params = {
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
    prefer_ctypes_crypto()
    from kernelfleet.launcher.supervisor import Supervisor  # asyncio and crypto load while the kernel boots

    supervisor = Supervisor(
        kernel.pid,
        prepared.config,
        prepared.comm_sock,
        prepared.info,
        prepared.path,
        early_signals=_early_signals,
        bound_fd=kernel.bound_fd,
        reservations=prepared.reservations,
    )
    return supervisor.run_forever()
