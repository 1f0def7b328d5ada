"""CurveZMQ keys for the kernel's five channels, made here, where the kernel runs, once per launch.

The server asks for transport encryption with TRANSPORT_ENCRYPTION (or GP's ``{transport_encryption}``
argv placeholder): ``auto`` or ``required``. The supervisor calls ``curve_keys`` before it writes the
connection file; ipykernel (>= 7.3, with jupyter_client >= 8.9 reading the file) then binds every
channel as a CurveZMQ server with these keys, and the keys travel to the server only inside the sealed
report (docs/protocol.md, section 3). Nothing here imports ipykernel: the kernel process is importing
it at the same time, and the versions are enough to know whether it can serve curve.
"""

from __future__ import annotations

import logging
from importlib import metadata

log = logging.getLogger("kernelfleet.launcher")

# The first releases whose kernel reads curve keys from its connection file and binds with them.
MIN_VERSIONS = {"ipykernel": (7, 3), "jupyter_client": (8, 9)}


class CurveUnavailable(RuntimeError):
    """Encryption was required and this environment cannot serve it; the message says what is missing."""


def _version(dist: str) -> tuple[int, ...]:
    try:
        text = metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ()
    parts: list[int] = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def missing_support() -> str | None:
    """Why this environment's kernel cannot serve CurveZMQ, or None when it can."""
    for dist, minimum in MIN_VERSIONS.items():
        found = _version(dist)
        if found < minimum:
            have = ".".join(map(str, found)) or "not installed"
            return f"{dist} {have} here; CurveZMQ needs {dist} >= {'.'.join(map(str, minimum))}"
    import zmq

    if not zmq.has("curve"):
        return f"libzmq {zmq.zmq_version()} of this pyzmq was built without CurveZMQ (libsodium)"
    return None


def curve_keys(policy: str, kernel_id: str) -> dict[str, str] | None:
    """A fresh Z85 key pair as connection-file fields, or None for plaintext.

    ``auto`` falls back to plaintext with one log line when the kernel cannot serve curve; ``required``
    raises CurveUnavailable instead, so the launch fails at once with the reason.
    """
    if policy not in ("auto", "required"):
        return None
    reason = missing_support()
    if reason is not None:
        if policy == "required":
            raise CurveUnavailable(f"kernel {kernel_id}: transport encryption is required but {reason}")
        log.warning("kernel %s: transport encryption unavailable (%s); the kernel runs unencrypted", kernel_id, reason)
        return None
    import zmq

    public, secret = zmq.curve_keypair()
    return {"curve_publickey": public.decode("ascii"), "curve_secretkey": secret.decode("ascii")}
