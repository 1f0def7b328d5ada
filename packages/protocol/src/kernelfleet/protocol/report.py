"""The launch report: the launcher's connection info, sealed so only the server can read it and nobody can forge it.

Sealing is RSA-OAEP(SHA-256) key transport of a fresh AES-256 key and HMAC key, AES-256-CBC of the
connection info, and an encrypt-then-MAC tag over everything the server reads. The launch token
inside proves the report comes from the launcher this server started (docs/protocol.md, section 3).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from Crypto.Cipher import AES
from Crypto.Random import get_random_bytes
from Crypto.Util.Padding import pad, unpad

from kernelfleet.protocol.constants import (
    AES_KEY_BYTES,
    COMM_KEY_BYTES,
    IV_BYTES,
    KERNEL_ID_PATTERN,
    MAC_KEY_BYTES,
    MAX_REPORT_BYTES,
    PORT_FIELDS,
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    REPORT_MAC_LABEL,
    REQUIRED_CONNECTION_FIELDS,
)
from kernelfleet.protocol.encoding import DecodeError, b64decode, b64encode, dumps_line, loads_object
from kernelfleet.protocol.keys import ServerKey, load_public_key, oaep


class ReportError(ValueError):
    """A report the server must not act on. ``kernel_id`` is set when the report named one."""

    def __init__(self, message: str, kernel_id: str | None = None) -> None:
        super().__init__(message)
        self.kernel_id = kernel_id


class LegacyReportError(ReportError):
    """A Gateway Provisioners (protocol v1) report arrived while v1 is not accepted."""


# What an operator must read when an old (Gateway Provisioners) kernel image reports: kept word for word,
# because it names the switch. The broker puts it in the launch's timeout error (see broker.py).
V1_REFUSED_MESSAGE = (
    "the kernel's launcher sent an unauthenticated protocol-v1 (Gateway Provisioners) report, which "
    "this server refuses by default. Rebuild the kernel image with Kernel Fleet's launchers, or "
    "accept v1 reports from old images with c.ResponseBroker.accept_v1_reports = True "
    "(environment: KF_ACCEPT_V1_REPORTS=true)"
)


@dataclass
class Report:
    """A verified report: what jupyter_client needs, plus what the provisioner keeps for itself."""

    kernel_id: str
    version: int
    connection_info: dict[str, Any]
    comm_port: int
    comm_key: bytes | None
    pid: int | None = None
    pgid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def report_mac(
    mac_key: bytes, kernel_id: str, wrapped: bytes, iv: bytes, ciphertext: bytes, label: bytes = REPORT_MAC_LABEL
) -> bytes:
    """The envelope's tag; ``label`` separates reports from the other sealed messages (a standby's registration)."""
    message = label + kernel_id.encode("utf-8") + b"\x00" + wrapped + iv + ciphertext
    return hmac.new(mac_key, message, hashlib.sha256).digest()  # stdlib: 14x faster than a pycryptodome HMAC


def seal_report(connection_info: dict[str, Any], *, kernel_id: str, public_key_b64: str, **fixed: Any) -> bytes:
    """Build the report line a launcher sends. ``fixed`` (``seal_envelope``'s aes_key, mac_key, iv, oaep_randfunc)
    exists only so test vectors are reproducible."""
    if not KERNEL_ID_PATTERN.match(kernel_id):
        raise ValueError(f"kernel id {kernel_id!r} is not a valid protocol kernel id")
    head = {"protocol": PROTOCOL_NAME, "version": PROTOCOL_VERSION, "kernel_id": kernel_id}
    return seal_envelope(connection_info, head=head, subject=kernel_id, label=REPORT_MAC_LABEL,
                         public_key_b64=public_key_b64, **fixed)


def seal_envelope(
    plaintext_object: dict[str, Any],
    *,
    head: dict[str, Any],
    subject: str,
    label: bytes,
    public_key_b64: str,
    aes_key: bytes | None = None,
    mac_key: bytes | None = None,
    iv: bytes | None = None,
    oaep_randfunc: Callable[[int], bytes] | None = None,
) -> bytes:
    """The sealing of section 3, shared by the report and a standby's registration (section 8): ``head`` are the
    clear fields before ``key``/``iv``/``ciphertext``/``mac``; the MAC binds ``label`` and ``subject`` (the id)."""
    aes_key = aes_key or get_random_bytes(AES_KEY_BYTES)
    mac_key = mac_key or get_random_bytes(MAC_KEY_BYTES)
    iv = iv or get_random_bytes(IV_BYTES)
    plaintext = json.dumps(plaintext_object, separators=(",", ":")).encode("utf-8")
    ciphertext = AES.new(aes_key, AES.MODE_CBC, iv=iv).encrypt(pad(plaintext, AES.block_size))
    wrapped = oaep(load_public_key(public_key_b64), randfunc=oaep_randfunc).encrypt(aes_key + mac_key)
    return dumps_line(
        {
            **head,
            "key": b64encode(wrapped),
            "iv": b64encode(iv),
            "ciphertext": b64encode(ciphertext),
            "mac": b64encode(report_mac(mac_key, subject, wrapped, iv, ciphertext, label)),
        }
    )


def peek_kernel_id(line: bytes) -> str | None:
    """The kernel id a v2 report claims, read without any cryptography, so the server can drop reports
    for kernels it is not waiting for before spending an RSA operation on them. None for anything else."""
    if len(line) > MAX_REPORT_BYTES or not line.lstrip().startswith(b"{"):
        return None
    try:
        envelope = loads_object(line, "report")
    except DecodeError:
        return None
    kernel_id = envelope.get("kernel_id")
    return kernel_id if isinstance(kernel_id, str) and KERNEL_ID_PATTERN.match(kernel_id) else None


def open_report(
    line: bytes,
    server_key: ServerKey,
    *,
    expected_token: Callable[[str], str | None],
    accept_v1: bool = False,
) -> Report:
    """Verify and decrypt one report. ``expected_token(kernel_id)`` returns the pending launch's token.

    Raises ReportError for anything not provably from that launcher; the message is safe to log
    (it never contains key material).
    """
    if len(line) > MAX_REPORT_BYTES:
        raise ReportError(f"report larger than {MAX_REPORT_BYTES} bytes")
    stripped = line.strip()
    if not stripped:
        raise ReportError("empty report")
    if is_v1_payload(stripped):
        return _open_legacy(stripped, server_key, expected_token=expected_token, accept_v1=accept_v1)
    try:
        envelope = loads_object(stripped, "report")
    except DecodeError as err:
        raise ReportError(str(err)) from None
    kernel_id = envelope.get("kernel_id")
    if not isinstance(kernel_id, str) or not KERNEL_ID_PATTERN.match(kernel_id):
        raise ReportError("report has no valid kernel_id")
    if envelope.get("protocol") != PROTOCOL_NAME or envelope.get("version") != PROTOCOL_VERSION:
        raise ReportError(
            f"report speaks protocol {envelope.get('protocol')!r} version {envelope.get('version')!r};"
            f" this server speaks {PROTOCOL_NAME} version {PROTOCOL_VERSION}",
            kernel_id,
        )
    token = expected_token(kernel_id)
    if token is None:
        raise ReportError("no launch is waiting for this kernel id", kernel_id)
    info = open_envelope(envelope, server_key, subject=kernel_id, label=REPORT_MAC_LABEL, what="report")
    if not token_matches(info.pop("launch_token", None), token):
        raise ReportError("report launch token does not match this launch", kernel_id)
    info.setdefault("kernel_id", kernel_id)
    if info["kernel_id"] != kernel_id:
        raise ReportError("report names two different kernel ids", kernel_id)
    return _to_report(kernel_id, PROTOCOL_VERSION, info, require_comm_key=True)


def open_envelope(
    envelope: dict[str, Any], server_key: ServerKey, *, subject: str, label: bytes, what: str
) -> dict[str, Any]:
    """Verify and decrypt a sealed envelope (``seal_envelope``); ReportError naming ``subject`` otherwise.

    The MAC is checked before anything is decrypted; messages name ``what`` ("report", "standby registration").
    """
    try:
        wrapped = b64decode(envelope.get("key"), "key")
        iv = b64decode(envelope.get("iv"), "iv", length=IV_BYTES)
        ciphertext = b64decode(envelope.get("ciphertext"), "ciphertext")
        mac = b64decode(envelope.get("mac"), "mac", length=32)
    except DecodeError as err:
        raise ReportError(str(err), subject) from None
    try:
        keys = server_key.unwrap(wrapped)
    except (ValueError, TypeError):
        raise ReportError(f"{what} key block does not decrypt with this server's key", subject) from None
    if len(keys) != AES_KEY_BYTES + MAC_KEY_BYTES:
        raise ReportError(f"{what} key block has the wrong length", subject)
    aes_key, mac_key = keys[:AES_KEY_BYTES], keys[AES_KEY_BYTES:]
    if not hmac.compare_digest(report_mac(mac_key, subject, wrapped, iv, ciphertext, label), mac):
        raise ReportError(f"{what} MAC does not verify", subject)
    try:
        plaintext = unpad(AES.new(aes_key, AES.MODE_CBC, iv=iv).decrypt(ciphertext), AES.block_size)
        return loads_object(plaintext, f"{what} plaintext")
    except (ValueError, DecodeError):
        what_info = "connection info" if what == "report" else "plaintext"
        raise ReportError(f"{what} {what_info} does not decrypt to a JSON object", subject) from None


def token_matches(sent: Any, expected: str) -> bool:
    """Constant-time comparison of a token read from a sealed message with the one the server handed out."""
    # surrogatepass: JSON can carry a lone surrogate, which plain UTF-8 encoding would raise on.
    return isinstance(sent, str) and hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), expected.encode())


def _to_report(kernel_id: str, version: int, info: dict[str, Any], *, require_comm_key: bool) -> Report:
    required = [f for f in REQUIRED_CONNECTION_FIELDS if f != "launch_token"]
    if not require_comm_key:
        required = [f for f in required if f != "comm_key"]
    missing = [f for f in required if f not in info]
    if missing:
        raise ReportError(f"connection info lacks {', '.join(missing)}", kernel_id)
    for name in PORT_FIELDS:
        value = info[name]
        if _is_decimal(value, max_digits=5):
            value = info[name] = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
            raise ReportError(f"connection info field {name} is not a port number", kernel_id)
    if not isinstance(info["key"], str):
        raise ReportError("connection info key must be a string", kernel_id)
    try:
        key = info["key"].encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry
        raise ReportError("connection info key is not valid Unicode text", kernel_id) from None
    comm_key = None
    if require_comm_key:
        try:
            comm_key = b64decode(info.pop("comm_key"), "comm_key", length=COMM_KEY_BYTES)
        except DecodeError as err:
            raise ReportError(str(err), kernel_id) from None
    comm_port = info.pop("comm_port")
    pid = _optional_int(info.pop("pid", None))
    pgid = _optional_int(info.pop("pgid", None))
    launcher = info.pop("launcher", None)
    info["key"] = key
    allowed = {"ip", "transport", "signature_scheme", "kernel_name", "key", "kernel_id", *PORT_FIELDS}
    extra = {k: info.pop(k) for k in list(info) if k not in allowed}
    if launcher is not None:
        extra["launcher"] = launcher
    return Report(kernel_id, version, info, comm_port, comm_key, pid, pgid, extra)


def _is_decimal(value: Any, *, max_digits: int) -> bool:
    """A string of at most ``max_digits`` ASCII digits: what launchers that write numbers as text send.

    ``str.isdigit`` alone also accepts characters such as '²' that ``int`` refuses, and a long digit string
    makes ``int`` raise; both would let a ValueError out of ``open_report`` instead of a ReportError.
    """
    return isinstance(value, str) and 0 < len(value) <= max_digits and value.isascii() and value.isdigit()


def _optional_int(value: Any) -> int | None:
    """The launcher's pid / pgid (``_to_report`` for both report versions): a process id, i.e. a whole
    number in 1..2**31-1, or None for anything else (a fraction, infinity, text that is not decimal, a
    number no process can have) rather than an exception or a value that would signal the wrong processes."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif _is_decimal(value, max_digits=10):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31:
        return value
    return None


def is_v1_payload(line: bytes) -> bool:
    """True for a line shaped like Gateway Provisioners' v1 payload (base64, not a JSON object): a cheap test
    the server makes before deciding whether such a line is worth any cryptography at all."""
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith(b"{")


def _open_legacy(
    stripped: bytes,
    server_key: ServerKey,
    *,
    expected_token: Callable[[str], str | None],
    accept_v1: bool,
) -> Report:
    """Gateway Provisioners' v1 report: base64 JSON {version:1, key, conn_info}, RSA-PKCS#1 v1.5 + AES-ECB.

    Refused unread while v1 is off: the kernel id sits inside the RSA-wrapped part, so naming it would
    cost a private-key operation for every line anyone sends, and a v1 payload proves nothing anyway.
    """
    if not accept_v1:
        raise LegacyReportError(V1_REFUSED_MESSAGE)
    try:
        envelope = loads_object(b64decode(stripped.decode("ascii", "replace"), "payload"), "v1 report")
    except DecodeError:
        raise ReportError("report is neither a v2 JSON line nor a v1 payload") from None
    if envelope.get("version") != 1:
        raise ReportError("version-0 (unencrypted-key) reports are never accepted")
    try:
        aes_key = server_key.unwrap_legacy(b64decode(envelope.get("key"), "key"))
        if aes_key is None or len(aes_key) not in (16, 24, 32):
            raise ReportError("v1 report key does not decrypt with this server's key")
        raw = AES.new(aes_key, AES.MODE_ECB).decrypt(b64decode(envelope.get("conn_info"), "conn_info"))
        info = loads_object(unpad(raw, AES.block_size), "v1 connection info")
    except (DecodeError, ValueError) as err:
        if isinstance(err, ReportError):
            raise
        raise ReportError("v1 report does not decrypt to a JSON object") from None
    kernel_id = info.get("kernel_id")
    if not isinstance(kernel_id, str) or not KERNEL_ID_PATTERN.match(kernel_id):
        raise ReportError("v1 report has no valid kernel_id")
    if expected_token(kernel_id) is None:
        raise ReportError("no launch is waiting for this kernel id", kernel_id)
    return _to_report(kernel_id, 1, info, require_comm_key=False)
