"""Start-up and shutdown of the foreground daemons the tests run (sshd, krb5kdc): one implementation of "wait
until it listens, or say why it died" and "terminate, then kill". Used by tests/ssh/sshd.py and tests/support/kdc.py.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time


def wait_listening(name: str, address: str, port: int, process: subprocess.Popen[bytes], within: float = 15.0) -> None:
    """Return once ``address:port`` accepts TCP; a daemon that exits first raises with its stderr."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"{name} for {address}:{port} exited with {process.returncode}: {err.strip()}")
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} for {address}:{port} did not listen within {within}s")


def stop_process(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM, SIGKILL after ``grace`` seconds, reaped, its stderr pipe closed."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stderr is not None:
        process.stderr.close()
