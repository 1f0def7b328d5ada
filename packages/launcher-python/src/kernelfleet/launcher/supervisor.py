"""``python -m kernelfleet.launcher``: read the inputs, reserve ports, write the connection file, spawn the kernel.

Everything up to the spawn uses only light imports, because the kernel's own start-up (importing
ipykernel) is the critical path; asyncio and the protocol's cryptography are loaded afterwards, while
the kernel is busy importing on the other core. See lifecycle.py for what happens after the spawn.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence

from kernelfleet.launcher.fastimport import prefer_ctypes_crypto, preload_protocol_leaves

preload_protocol_leaves()  # must run before the kernelfleet.protocol imports below (see fastimport)

from kernelfleet.launcher.config import PROG, ConfigError, LauncherConfig, load_config  # noqa: E402
from kernelfleet.launcher.connfile import (  # noqa: E402
    connection_info,
    new_hmac_key,
    remove_connection_file,
    write_connection_file,
)
from kernelfleet.launcher.ports import PortError, bind_ports, port_of  # noqa: E402
from kernelfleet.launcher.spawn import spawn_kernel  # noqa: E402

EXIT_USAGE = 2
EXIT_FAILURE = 1

log = logging.getLogger("kernelfleet.launcher")

# Signals that arrive before the event loop owns signal handling; the loop acts on them at once.
_early_signals: list[int] = []


def _remember_signal(signum: int, frame: object) -> None:
    _early_signals.append(signum)


def fail(message: str, status: int) -> int:
    """Print the launcher's one-line error and return the exit status to use."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def _setup_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(levelname).1s %(asctime)s %(name)s] %(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the launcher; returns the process exit status (the kernel's own, when it ran)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _remember_signal)
    try:
        config = load_config(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as err:
        return fail(str(err), EXIT_USAGE)
    _setup_logging(config.log_level)
    if _early_signals:
        return 128 + _early_signals[0]
    return _launch(config)


def _launch(config: LauncherConfig) -> int:
    kid = config.kernel_id
    try:
        sockets = bind_ports(config.kernel_ip, config.port_range)
    except PortError as err:
        return fail(f"kernel {kid}: {err}", EXIT_FAILURE)
    ports = [port_of(s) for s in sockets]
    info = connection_info(config.kernel_ip, ports[:5], new_hmac_key())
    try:
        path = write_connection_file(info)
    except OSError as err:
        for sock in sockets:
            sock.close()
        return fail(f"kernel {kid}: cannot write the connection file: {err}", EXIT_FAILURE)
    log.info(
        "kernel %s: ports chosen on %s: shell %d, iopub %d, stdin %d, control %d, hb %d, comm %d",
        kid,
        config.kernel_ip,
        *ports,
    )
    for sock in sockets[:5]:
        sock.close()  # the kernel binds these itself
    comm_sock = sockets[5]
    try:
        popen = spawn_kernel(
            path,
            kernel_id=kid,
            kernel_class_name=config.kernel_class_name,
            spark_init_mode=config.spark_init_mode,
            cluster_type=config.cluster_type,
        )
    except OSError as err:
        comm_sock.close()
        remove_connection_file(path)
        return fail(f"kernel {kid}: cannot start the kernel process: {err}", EXIT_FAILURE)
    log.info("kernel %s: kernel started (pid %d, class %s)", kid, popen.pid, config.kernel_class_name)

    prefer_ctypes_crypto()
    from kernelfleet.launcher.lifecycle import Supervisor  # asyncio and crypto load while the kernel boots

    supervisor = Supervisor(config, popen, comm_sock, info, path, early_signals=_early_signals)
    return supervisor.run_forever()

