"""The kernel's connection file: written where only this user can read it, removed when the launcher ends.

The file holds the kernel's HMAC key (and its CurveZMQ secret key when encrypted), so it lives in a fresh
0700 directory and is created 0600 with O_EXCL; nobody else on the host can read it or swap it for their own.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # typing itself stays unloaded: these modules run in the launcher's small supervisor
if TYPE_CHECKING:
    from typing import Any

KERNEL_PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def new_hmac_key() -> str:
    """256 bits from the OS CSPRNG, hex so it is a plain string in JSON like jupyter_client's keys."""
    return os.urandom(32).hex()


def connection_info(ip: str, ports: list[int], key: str, curve: dict[str, str] | None = None) -> dict[str, Any]:
    """The connection file's fields; with ``curve`` (curve.curve_keys) ipykernel serves every channel encrypted."""
    info: dict[str, Any] = dict(zip(KERNEL_PORT_NAMES, ports, strict=True))
    info.update(ip=ip, key=key, transport="tcp", signature_scheme="hmac-sha256", kernel_name="")
    if curve:
        info.update(curve)
    return info


def write_connection_file(info: dict[str, Any]) -> str:
    """Write ``info`` into a private directory and return the file's path."""
    import tempfile  # here: the long-lived supervisor imports this module but never writes the file

    directory = tempfile.mkdtemp(prefix="kernelfleet-")  # mode 0700
    path = os.path.join(directory, "kernel.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(info, f)
    return path


def remove_connection_file(path: str) -> None:
    """Remove the file and its private directory (the kernel may already have removed the file).

    The directory holds nothing else (write_connection_file made it for this file alone)."""
    for remove, target in ((os.unlink, path), (os.rmdir, os.path.dirname(path))):
        try:
            remove(target)
        except OSError:
            pass
