"""Standby mode (protocol 2.1): a warmed launcher that waits in a server's pool until it is claimed.

``main._prepare`` calls ``await_claim`` when the launcher was started with ``KF_STANDBY_ID``. By then the
kernel process (spawn.py) is importing ipykernel; this process loads what the reporting phase needs
(asyncio, the cryptography, the supervisor's modules), registers with the server's response broker, and
blocks until the one claim arrives on that connection, the server closes it (the pool culled this standby,
or the server is gone: exit 0), the kernel process dies, or a signal stops it. After an accepted claim the
launch goes on exactly as a cold one, with the claimed kernel id, launch token and port range, and with the
claim's environment and working directory handed to the kernel before it runs any user code.
"""

from __future__ import annotations

import os
import select
import signal
import socket
from collections.abc import Mapping, MutableMapping
from typing import Any

from kernelfleet.launcher._version import __version__
from kernelfleet.launcher.config import ConfigError, LauncherConfig, claimed_config
from kernelfleet.launcher.fastimport import prefer_ctypes_crypto
from kernelfleet.launcher.logs import EXIT_FAILURE, log
from kernelfleet.protocol import contract as c

REGISTER_TIMEOUT = 30.0  # connect, send and hear the server's verdict
MAX_ANSWER = 4096


class StandbyEnded(Exception):
    """The standby will never become a kernel; ``status`` is the launcher's exit status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Stopped(BaseException):
    pass


def is_standby(env: Mapping[str, str]) -> bool:
    """True when the pool started this launcher (``KF_STANDBY_ID`` set): it waits for a claim first."""
    return bool(env.get(c.STANDBY_ID, "").strip())


def _warm_reporting_phase() -> None:
    """Import now what the launch needs after the claim, so that none of it is on the claimed kernel's path."""
    prefer_ctypes_crypto()
    import asyncio  # noqa: F401

    import kernelfleet.launcher.comm_server
    import kernelfleet.launcher.handover
    import kernelfleet.launcher.reporter
    import kernelfleet.protocol.keys
    import kernelfleet.protocol.report  # noqa: F401


class _Lines:
    """Lines from the standby's connection: the server's verdict and its claim may arrive in one read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def read(self, limit: int, watch_fd: int | None) -> bytes:
        """One line; b"" on EOF. StandbyEnded when the kernel process (``watch_fd``) dies first."""
        while b"\n" not in self.buffer:
            if watch_fd is not None:
                readable, _, _ = select.select([self.sock, watch_fd], [], [])
                if watch_fd in readable and self.sock not in readable:
                    raise StandbyEnded(EXIT_FAILURE, "the warmed kernel process exited while the standby waited")
            chunk = self.sock.recv(65536)
            if not chunk:
                return b""
            self.buffer += chunk
            if len(self.buffer) > limit:
                raise StandbyEnded(EXIT_FAILURE, "the server sent an over-long line")
        end = self.buffer.index(b"\n") + 1
        line = bytes(self.buffer[:end])
        del self.buffer[:end]
        return line


def _wait_until_warm(kernel_bound_fd: int) -> None:
    """Block until the kernel process has done its imports (its ``warm`` line): only then is this standby worth
    claiming. The line is read byte by byte so that nothing after it is taken from the reporting phase."""
    from kernelfleet.launcher.kernel import WARM_LINE

    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(kernel_bound_fd, 1)
        if not byte:
            raise StandbyEnded(EXIT_FAILURE, "the kernel process exited before its imports were done")
        line += byte
    if line != WARM_LINE:
        raise StandbyEnded(EXIT_FAILURE, "the kernel process said something unexpected before its launch")


def _raise_stopped(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def await_claim(config: LauncherConfig, env: MutableMapping[str, str], kernel_bound_fd: int,
                early_signals: list[int]) -> tuple[LauncherConfig, dict[str, Any]]:
    """Register, wait, and return the claimed launch's config and the kernel's extra launch parameters.

    ``env`` (the launcher's os.environ) gets the claim's environment, so that the small supervisor exec'd later
    carries the kernel id like a cold launcher does (the orphan sweep finds local launchers by it).
    Raises StandbyEnded when the standby ends without a claim.
    """
    from kernelfleet.protocol.constants import NONCE_BYTES
    from kernelfleet.protocol.standby import (
        CLAIM_KEY_BYTES,
        MAX_CLAIM_BYTES,
        ClaimError,
        ClaimVerifier,
        claim_answer,
        seal_registration,
    )

    _warm_reporting_phase()
    standby_id, pool = env.get(c.STANDBY_ID, "").strip(), env.get(c.STANDBY_POOL, "").strip()
    claim_key, nonce = os.urandom(CLAIM_KEY_BYTES), os.urandom(NONCE_BYTES)
    try:
        line = seal_registration(standby_id=standby_id, pool=pool, token=config.launch_token, claim_key=claim_key,
                                 nonce=nonce, public_key_b64=config.public_key, pid=os.getpid(),
                                 launcher=f"python/{__version__}")
    except (ValueError, TypeError, IndexError) as err:
        raise StandbyEnded(EXIT_FAILURE, f"standby {standby_id}: cannot register: {err}") from None
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if early_signals:
            raise _Stopped(early_signals[0])
        _wait_until_warm(kernel_bound_fd)
        address = config.response_address
        try:
            sock = socket.create_connection((address.host, address.port), timeout=REGISTER_TIMEOUT)
        except OSError as err:
            raise StandbyEnded(EXIT_FAILURE, f"standby {standby_id}: cannot reach {address}: {err}") from None
        with sock:
            sock.sendall(line)
            lines = _Lines(sock)
            answer = lines.read(MAX_ANSWER, None)
            if b'"ok":true' not in answer:
                raise StandbyEnded(EXIT_FAILURE, f"standby {standby_id}: the server refused the registration")
            log.info("standby %s: registered with pool %s at %s", standby_id, pool, address)
            sock.settimeout(None)
            claim_line = lines.read(MAX_CLAIM_BYTES, kernel_bound_fd)
            if not claim_line:
                raise StandbyEnded(0, f"standby {standby_id}: the server let go of this standby; exiting")
            verifier = ClaimVerifier(standby_id=standby_id, pool=pool, claim_key=claim_key, nonce=nonce)
            try:
                claim = verifier.open(claim_line)
                claimed = claimed_config(config, kernel_id=claim.kernel_id, token=claim.launch_token,
                                         port_range=claim.port_range, env=claim.env)
            except (ClaimError, ConfigError) as err:
                _send_quietly(sock, claim_answer(str(err)))
                raise StandbyEnded(EXIT_FAILURE, f"standby {standby_id}: refused a claim: {err}") from None
            env.update(claim.env)
            _send_quietly(sock, claim_answer())
    except _Stopped as stop:
        raise StandbyEnded(128 + int(stop.args[0]), f"standby {standby_id}: stopped by a signal") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("standby %s: claimed for kernel %s", standby_id, claimed.kernel_id)
    return claimed, {"env": claim.env, "cwd": claim.working_dir}


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass

