"""Regenerate docs/protocol-vectors-2.2.json: protocol 2.2's ``signal`` comm op, signed lines and the refusals.

Protocol 2.2 (docs/protocol.md, section 4) adds one comm op to version 2; the version-2 and 2.1 files are unchanged.
The comm key and nonce are those of protocol-vectors.json, so a launcher checks these lines with the same inputs.
Usage: python tools/make_signal_vectors.py > docs/protocol-vectors-2.2.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from kernelfleet.protocol.comm import CommOp, comm_mac, sign_request
from kernelfleet.protocol.signals import ALLOWED_SIGNALS, NOT_A_NAME, NOT_ALLOWED, SIGNAL_OP_MINOR


def fixed(byte: int, n: int) -> bytes:
    return bytes((byte + i) % 256 for i in range(n))


# Signed requests every launcher must refuse, with the error it answers; none is acted on.
REFUSALS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("a raw signal number (numbers differ across platforms)", {"signal": 10}, NOT_A_NAME),
    ("a signal number as Gateway Provisioners sent it", {"signum": 10}, NOT_A_NAME),
    ("no signal field", {}, NOT_A_NAME),
    ("a list of names", {"signal": ["SIGUSR1"]}, NOT_A_NAME),
    ("a name without SIG", {"signal": "USR1"}, NOT_ALLOWED),
    ("a lower-case name", {"signal": "sigusr1"}, NOT_ALLOWED),
    ("a name with a blank", {"signal": "SIGUSR1 "}, NOT_ALLOWED),
    ("a digit string", {"signal": "10"}, NOT_ALLOWED),
    ("SIGINT: it has its own op, interrupt", {"signal": "SIGINT"}, NOT_ALLOWED),
    ("SIGTERM: it has its own op, terminate", {"signal": "SIGTERM"}, NOT_ALLOWED),
    ("SIGKILL: it has its own op, kill", {"signal": "SIGKILL"}, NOT_ALLOWED),
    ("SIGSEGV: not a signal a kernel is sent", {"signal": "SIGSEGV"}, NOT_ALLOWED),
    ("SIGPIPE: not a signal a kernel is sent", {"signal": "SIGPIPE"}, NOT_ALLOWED),
    ("a name no platform has", {"signal": "SIGFOO"}, NOT_ALLOWED),
)


def signed(comm_key: bytes, nonce: bytes, params: dict[str, Any]) -> dict[str, str]:
    line = sign_request(comm_key, nonce, CommOp.SIGNAL, **params)
    request = json.loads(line)["request"]
    return {"line": line.decode().rstrip("\n"), "mac_hex": comm_mac(comm_key, nonce, request.encode()).hex()}


def vectors() -> dict[str, Any]:
    comm_key, nonce = fixed(0xA0, 32), fixed(0xC0, 32)
    return {
        "protocol": "kernelfleet",
        "version": 2,
        "minor": SIGNAL_OP_MINOR,
        "about": "Protocol 2.2's signal comm op (docs/protocol.md, section 4): requests every launcher accepts, and "
                 "signed requests it refuses with the given error. Comm key and nonce as in protocol-vectors.json.",
        "comm_key_hex": comm_key.hex(),
        "nonce_hex": nonce.hex(),
        "allowed": list(ALLOWED_SIGNALS),
        "accept": [{"signal": name, **signed(comm_key, nonce, {"signal": name})} for name in ALLOWED_SIGNALS],
        "refuse": [{"why": why, "params": params, "error": error, **signed(comm_key, nonce, params)}
                   for why, params, error in REFUSALS],
        "older_launcher_error": "unknown op",
    }


def main() -> None:
    json.dump(vectors(), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
