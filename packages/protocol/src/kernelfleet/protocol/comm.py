"""Communication-port requests: a challenge from the launcher, a MAC over it from the server.

The launcher sends a fresh nonce when a connection opens; the server's request carries
HMAC-SHA256(comm_key, label || nonce || request), so a captured request is useless on any later
connection and only the holder of comm_key (sent inside the sealed report) can make one.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os

from kernelfleet.protocol.constants import (
    COMM_MAC_LABEL,
    MAX_COMM_LINE_BYTES,
    NONCE_BYTES,
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
)
from kernelfleet.protocol.encoding import DecodeError, b64decode, b64encode, dumps_line, loads_object

TYPE_CHECKING = False  # typing itself stays unloaded: these modules run in the launcher's small supervisor
if TYPE_CHECKING:
    from typing import Any


class CommProtocolError(ValueError):
    """A comm-port message that must be ignored."""


class UnknownOpError(CommProtocolError):
    """An authenticated request for an op the protocol does not name."""


class CommOp(enum.StrEnum):
    """The only requests a launcher acts on (``signal`` since protocol 2.2: older launchers answer "unknown op")."""

    PING = "ping"
    INTERRUPT = "interrupt"
    TERMINATE = "terminate"
    KILL = "kill"
    SHUTDOWN = "shutdown"
    SIGNAL = "signal"  # protocol 2.2: one signal of signals.ALLOWED_SIGNALS, by name


def comm_mac(comm_key: bytes, nonce: bytes, request: bytes) -> bytes:
    return hmac.new(comm_key, COMM_MAC_LABEL + nonce + request, hashlib.sha256).digest()


def greeting(nonce: bytes | None = None) -> tuple[bytes, bytes]:
    """The launcher's first line on each connection, and the nonce it carries."""
    nonce = nonce or os.urandom(NONCE_BYTES)  # the OS CSPRNG: no pycryptodome in the launcher's supervisor
    return dumps_line({"protocol": PROTOCOL_NAME, "version": PROTOCOL_VERSION, "nonce": b64encode(nonce)}), nonce


def parse_greeting(line: bytes) -> bytes:
    _check_size(line)
    try:
        obj = loads_object(line, "comm greeting")
        if obj.get("protocol") != PROTOCOL_NAME or obj.get("version") != PROTOCOL_VERSION:
            raise CommProtocolError(f"comm port speaks {obj.get('protocol')!r} version {obj.get('version')!r}")
        return b64decode(obj.get("nonce"), "nonce", length=NONCE_BYTES)
    except DecodeError as err:
        raise CommProtocolError(str(err)) from None


def sign_request(comm_key: bytes, nonce: bytes, op: CommOp, **params: Any) -> bytes:
    request = json.dumps({"op": CommOp(op).value, **params}, separators=(",", ":"))
    mac = comm_mac(comm_key, nonce, request.encode("utf-8"))
    return dumps_line({"request": request, "mac": b64encode(mac)})


def verify_request(comm_key: bytes, nonce: bytes, line: bytes) -> tuple[CommOp, dict[str, Any]]:
    """Return the op and its parameters, or raise CommProtocolError. Constant-time MAC check."""
    _check_size(line)
    try:
        obj = loads_object(line, "comm request")
        request = obj.get("request")
        if not isinstance(request, str):
            raise CommProtocolError("comm request has no request string")
        mac = b64decode(obj.get("mac"), "mac", length=32)
    except DecodeError as err:
        raise CommProtocolError(str(err)) from None
    if not hmac.compare_digest(comm_mac(comm_key, nonce, request.encode("utf-8")), mac):
        raise CommProtocolError("comm request MAC does not verify")
    try:
        params = loads_object(request, "comm request body")
        op = CommOp(params.pop("op", None))
    except (DecodeError, ValueError):
        raise UnknownOpError("comm request names no known op") from None
    return op, params


def reply(ok: bool, **fields: Any) -> bytes:
    return dumps_line({"ok": ok, **fields})


def parse_reply(line: bytes) -> dict[str, Any]:
    _check_size(line)
    try:
        obj = loads_object(line, "comm reply")
    except DecodeError as err:
        raise CommProtocolError(str(err)) from None
    if not isinstance(obj.get("ok"), bool):
        raise CommProtocolError("comm reply has no ok field")
    return obj


def _check_size(line: bytes) -> None:
    if len(line) > MAX_COMM_LINE_BYTES:
        raise CommProtocolError(f"comm line longer than {MAX_COMM_LINE_BYTES} bytes")
