"""Protocol 2.1: warm-pool standbys. A standby launcher registers; the server later claims it for one kernel.

A standby is a launcher started before any kernel exists: no kernel id, no user environment, no
connection key. It proves it is the standby this server started, as a report proves its launch
(``registration``: sealed like a report, with the standby's token and a fresh claim key inside), and
keeps that connection open. The server claims it with one line on the same connection (``claim``):
AES-256-CBC under the claim key's first half, encrypt-then-MAC under its second half over the pool,
the standby id and the nonce the standby registered with. Only the server (which unwrapped the claim
key) can make a claim, a claim names the one standby and pool it is for, and a standby accepts one
claim in its life (``ClaimVerifier``): a replayed or second claim is refused. docs/protocol.md,
section 8, is the specification; docs/protocol-vectors-2.1.json pins the bytes.

Called by the Python launcher (``kernelfleet.launcher.standby``) and by the server's pool
(``kernelfleet.provisioners.pool``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from Crypto.Cipher import AES
from Crypto.Util.Padding import pad, unpad

from kernelfleet.protocol import contract
from kernelfleet.protocol.constants import IV_BYTES, KERNEL_ID_PATTERN, NONCE_BYTES, PROTOCOL_NAME, PROTOCOL_VERSION
from kernelfleet.protocol.encoding import DecodeError, b64decode, b64encode, dumps_line, loads_object
from kernelfleet.protocol.keys import ServerKey
from kernelfleet.protocol.report import ReportError, open_envelope, seal_envelope, token_matches

PROTOCOL_MINOR = 1
REGISTRATION_MAC_LABEL = b"kernelfleet-standby-v2.1\x00"
CLAIM_MAC_LABEL = b"kernelfleet-claim-v2.1\x00"
CLAIM_KEY_BYTES = 64  # 32 for AES-256, 32 for HMAC-SHA256
MAX_CLAIM_BYTES = 256 * 1024  # a claim carries the request's environment (at most a few hundred values of 4 KiB)
MAX_ENV_VALUE = 65536
# Names the claim never sets in the kernel's environment: the secrets travel in their own fields.
RESERVED_ENV = frozenset({"LAUNCH_TOKEN", "LAUNCH_TOKEN_FILE"})

# What a standby launcher receives besides RESPONSE_ADDRESS, PUBLIC_KEY and LAUNCH_TOKEN (its registration token).
STANDBY_ID, STANDBY_POOL = contract.STANDBY_ID, contract.STANDBY_POOL


class ClaimError(ValueError):
    """A claim the standby must refuse; the message is safe to log and to send back."""


@dataclass(frozen=True)
class Registration:
    """A verified registration: which standby of which pool, and the key the server claims it with."""

    standby_id: str
    pool: str
    claim_key: bytes = field(repr=False)
    nonce: bytes = field(repr=False)
    pid: int | None = None
    launcher: str = ""


@dataclass(frozen=True)
class Claim:
    """What turns a standby into one kernel: the cold launch's inputs (docs/protocol.md, section 2)."""

    kernel_id: str
    launch_token: str = field(repr=False)
    env: dict[str, str] = field(repr=False)  # the request's environment, validated by the server as for a cold launch
    working_dir: str | None
    port_range: str

    def to_json(self) -> dict[str, Any]:
        return {"kernel_id": self.kernel_id, "launch_token": self.launch_token, "env": self.env,
                "working_dir": self.working_dir, "port_range": self.port_range}


def _check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not KERNEL_ID_PATTERN.match(value):
        raise ValueError(f"{what} must be 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit")
    return value


# ----------------------------------------------------------------------------------------------- registration
def seal_registration(
    *,
    standby_id: str,
    pool: str,
    token: str,
    claim_key: bytes,
    nonce: bytes,
    public_key_b64: str,
    pid: int | None = None,
    launcher: str = "",
    **fixed: Any,
) -> bytes:
    """The standby's first line. ``fixed`` (aes_key, mac_key, iv, oaep_randfunc) exists only for test vectors."""
    _check_id(standby_id, "standby id")
    _check_id(pool, "pool")
    if len(claim_key) != CLAIM_KEY_BYTES or len(nonce) != NONCE_BYTES:
        raise ValueError(f"a claim key is {CLAIM_KEY_BYTES} bytes and a nonce {NONCE_BYTES}")
    head = {"protocol": PROTOCOL_NAME, "version": PROTOCOL_VERSION, "minor": PROTOCOL_MINOR, "standby_id": standby_id}
    body: dict[str, Any] = {"standby_id": standby_id, "pool": pool, "launch_token": token,
                            "claim_key": b64encode(claim_key), "nonce": b64encode(nonce)}
    if pid is not None:
        body["pid"] = pid
    if launcher:
        body["launcher"] = launcher
    return seal_envelope(body, head=head, subject=standby_id, label=REGISTRATION_MAC_LABEL,
                         public_key_b64=public_key_b64, **fixed)


def peek_standby_id(line: bytes) -> str | None:
    """The standby id a registration claims, read without cryptography; None when ``line`` is not one."""
    if len(line) > MAX_CLAIM_BYTES or b'"standby_id"' not in line:
        return None
    try:
        envelope = loads_object(line, "registration")
    except DecodeError:
        return None
    sid = envelope.get("standby_id")
    if envelope.get("minor") != PROTOCOL_MINOR or not isinstance(sid, str) or not KERNEL_ID_PATTERN.match(sid):
        return None
    return sid


def open_registration(
    line: bytes, server_key: ServerKey, *, expected: Callable[[str], tuple[str, str] | None]
) -> Registration:
    """Verify one registration; ``expected(standby_id)`` is the pending standby's (pool, token), or None.

    Raises ReportError (its ``kernel_id`` is the standby id) for anything not provably from that standby.
    """
    try:
        envelope = loads_object(line.strip(), "registration")
    except DecodeError as err:
        raise ReportError(str(err)) from None
    sid = envelope.get("standby_id")
    if not isinstance(sid, str) or not KERNEL_ID_PATTERN.match(sid):
        raise ReportError("registration has no valid standby_id")
    if (envelope.get("protocol"), envelope.get("version"), envelope.get("minor")) != (
            PROTOCOL_NAME, PROTOCOL_VERSION, PROTOCOL_MINOR):
        raise ReportError("registration does not speak protocol 2.1", sid)
    pending = expected(sid)
    if pending is None:
        raise ReportError("no standby with this id is expected", sid)
    pool, token = pending
    body = open_envelope(envelope, server_key, subject=sid, label=REGISTRATION_MAC_LABEL,
                         what="standby registration")
    if not token_matches(body.get("launch_token"), token):
        raise ReportError("standby registration token does not match", sid)
    if body.get("standby_id") != sid or body.get("pool") != pool:
        raise ReportError("standby registration names another standby or pool", sid)
    try:
        claim_key = b64decode(body.get("claim_key"), "claim_key", length=CLAIM_KEY_BYTES)
        nonce = b64decode(body.get("nonce"), "nonce", length=NONCE_BYTES)
    except DecodeError as err:
        raise ReportError(str(err), sid) from None
    pid = body.get("pid")
    launcher = body.get("launcher")
    return Registration(sid, pool, claim_key, nonce, pid if isinstance(pid, int) and 0 < pid < 2**31 else None,
                        launcher if isinstance(launcher, str) else "")


# ----------------------------------------------------------------------------------------------- claim
def claim_mac(mac_key: bytes, pool: str, standby_id: str, nonce: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    message = CLAIM_MAC_LABEL + pool.encode() + b"\x00" + standby_id.encode() + b"\x00" + nonce + iv + ciphertext
    return hmac.new(mac_key, message, hashlib.sha256).digest()


def seal_claim(claim: Claim, registration: Registration, *, iv: bytes | None = None) -> bytes:
    """The server's claim line for the standby that sent ``registration``. ``iv`` is fixed only by test vectors."""
    _check_id(claim.kernel_id, "kernel id")
    iv = iv or os.urandom(IV_BYTES)
    aes_key, mac_key = registration.claim_key[:32], registration.claim_key[32:]
    plaintext = json.dumps(claim.to_json(), separators=(",", ":")).encode("utf-8")
    ciphertext = AES.new(aes_key, AES.MODE_CBC, iv=iv).encrypt(pad(plaintext, AES.block_size))
    mac = claim_mac(mac_key, registration.pool, registration.standby_id, registration.nonce, iv, ciphertext)
    return dumps_line({"protocol": PROTOCOL_NAME, "version": PROTOCOL_VERSION, "minor": PROTOCOL_MINOR,
                       "pool": registration.pool, "standby_id": registration.standby_id,
                       "iv": b64encode(iv), "ciphertext": b64encode(ciphertext), "mac": b64encode(mac)})


def _claim_from(obj: dict[str, Any]) -> Claim:
    kernel_id = obj.get("kernel_id")
    if not isinstance(kernel_id, str) or not KERNEL_ID_PATTERN.match(kernel_id):
        raise ClaimError("claim has no valid kernel_id")
    token, env, cwd, ports = obj.get("launch_token"), obj.get("env"), obj.get("working_dir"), obj.get("port_range")
    if not isinstance(token, str) or not token or not isinstance(ports, str):
        raise ClaimError("claim lacks its launch token or port range")
    if cwd is not None and (not isinstance(cwd, str) or not cwd.startswith("/") or "\x00" in cwd):
        raise ClaimError("claim working_dir must be an absolute path")
    if not isinstance(env, dict):
        raise ClaimError("claim env must be an object of strings")
    for name, value in env.items():
        if (not isinstance(value, str) or not name or "=" in name or "\x00" in name or "\x00" in value
                or len(value) > MAX_ENV_VALUE or name in RESERVED_ENV):
            raise ClaimError(f"claim env entry {name[:60]!r} is not allowed")
    return Claim(kernel_id, token, dict(env), cwd, ports)


class ClaimVerifier:
    """The standby's side: accepts exactly one claim made for it, and refuses everything after that."""

    def __init__(self, *, standby_id: str, pool: str, claim_key: bytes, nonce: bytes) -> None:
        self.standby_id, self.pool = standby_id, pool
        self._key, self._nonce = claim_key, nonce
        self.claimed = False

    def open(self, line: bytes) -> Claim:
        """The claim in ``line``; ClaimError (never acted on) when it is not this standby's first valid claim."""
        if self.claimed:
            raise ClaimError("this standby was claimed already")
        if len(line) > MAX_CLAIM_BYTES:
            raise ClaimError(f"claim larger than {MAX_CLAIM_BYTES} bytes")
        try:
            obj = loads_object(line, "claim")
            iv = b64decode(obj.get("iv"), "iv", length=IV_BYTES)
            ciphertext = b64decode(obj.get("ciphertext"), "ciphertext")
            mac = b64decode(obj.get("mac"), "mac", length=32)
        except DecodeError as err:
            raise ClaimError(str(err)) from None
        if (obj.get("protocol"), obj.get("version"), obj.get("minor")) != (
                PROTOCOL_NAME, PROTOCOL_VERSION, PROTOCOL_MINOR):
            raise ClaimError("claim does not speak protocol 2.1")
        if obj.get("pool") != self.pool or obj.get("standby_id") != self.standby_id:
            raise ClaimError("claim is for another pool or standby")
        expected = claim_mac(self._key[32:], self.pool, self.standby_id, self._nonce, iv, ciphertext)
        if not hmac.compare_digest(expected, mac):
            raise ClaimError("claim MAC does not verify")
        self.claimed = True  # from here on, whatever the content: one claim per standby, ever
        try:
            plaintext = unpad(AES.new(self._key[:32], AES.MODE_CBC, iv=iv).decrypt(ciphertext), AES.block_size)
            return _claim_from(loads_object(plaintext, "claim body"))
        except (ValueError, DecodeError) as err:
            if isinstance(err, ClaimError):
                raise
            raise ClaimError("claim does not decrypt to a JSON object") from None


def claim_answer(error: str | None = None) -> bytes:
    """The standby's one-line answer to a claim, before it closes the connection."""
    return dumps_line({"ok": True} if error is None else {"ok": False, "error": error})
