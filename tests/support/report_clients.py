"""Report senders for broker tests: sealed v2 reports, Gateway Provisioners' v1 payloads, and plain sockets.

Shared by the broker's unit tests, its hostile-client tests and the embedded-default tests, so every
suite attacks and reports the same way a launcher does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets

from Crypto.Cipher import AES, PKCS1_v1_5
from Crypto.PublicKey import RSA
from Crypto.Util.Padding import pad

from kernelfleet.protocol import seal_report
from kernelfleet.protocol.encoding import b64encode

ACCEPTED = b'{"ok":true}\n'
REJECTED = b'{"ok":false,"error":"rejected"}\n'


def connection_info(kernel_id: str, token: str) -> dict[str, object]:
    """What a launcher puts inside its sealed report (ports are made up: nothing connects to them)."""
    return {
        "shell_port": 50001, "iopub_port": 50002, "stdin_port": 50003, "control_port": 50004, "hb_port": 50005,
        "ip": "127.0.0.1", "key": "secret-hmac-" + secrets.token_hex(8), "transport": "tcp",
        "signature_scheme": "hmac-sha256", "kernel_name": "", "comm_port": 50006,
        "comm_key": b64encode(secrets.token_bytes(32)), "launch_token": token, "kernel_id": kernel_id,
    }


def sealed_report(public_key: str, kernel_id: str, token: str) -> bytes:
    return seal_report(connection_info(kernel_id, token), kernel_id=kernel_id, public_key_b64=public_key)


def gp_v1_payload(public_key_b64: str, info: dict[str, object]) -> bytes:
    """A Gateway Provisioners 0.5 launcher's report (predecessor.md section 3.3), made with the real public key."""
    aes_key = secrets.token_bytes(16)
    conn = base64.b64encode(AES.new(aes_key, AES.MODE_ECB).encrypt(pad(json.dumps(info).encode(), 16)))
    rsa = PKCS1_v1_5.new(RSA.import_key(base64.b64decode(public_key_b64)))
    envelope = {"version": 1, "key": base64.b64encode(rsa.encrypt(aes_key)).decode(), "conn_info": conn.decode()}
    return base64.b64encode(json.dumps(envelope).encode())


def v1_info(kernel_id: str) -> dict[str, object]:
    """The connection info a v1 launcher sends: no comm key, no launch token."""
    info = connection_info(kernel_id, "")
    del info["comm_key"], info["launch_token"]
    return info


async def send(address: str, payload: bytes, *, close_after: bool = False) -> bytes:
    """Send one payload to a response address and return everything the broker answers before closing."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    writer.write(payload)
    if close_after:
        writer.write_eof()
    await writer.drain()
    try:
        return await reader.read()
    finally:
        writer.close()
