"""Regenerate docs/protocol-vectors.json: fixed inputs and the exact bytes protocol v2 makes from them.

Run once per protocol version; every launcher's tests (Python, R, Scala) read the file, so a change
here is a protocol change. Usage: python tools/make_protocol_vectors.py > docs/protocol-vectors.json
"""

from __future__ import annotations

import json
import sys

from Crypto.PublicKey import RSA

from kernelfleet.protocol import ServerKey, sign_request
from kernelfleet.protocol.comm import comm_mac, greeting
from kernelfleet.protocol.encoding import b64encode
from kernelfleet.protocol.report import seal_report


def fixed(byte: int, n: int) -> bytes:
    return bytes((byte + i) % 256 for i in range(n))


def kernel_id_cases(kernel_id: str) -> dict[str, object]:
    """Ids every implementation must accept and refuse; a trailing newline passed Python's old ``$`` anchor."""
    return {
        "valid": [kernel_id, "a", "K" * 128, "k.1_2-3"],
        "invalid": [
            {"why": "trailing newline", "id": kernel_id + "\n"},
            {"why": "trailing carriage return", "id": kernel_id + "\r"},
            {"why": "newline inside", "id": "abc\ndef"},
            {"why": "empty", "id": ""},
            {"why": "129 characters", "id": "K" * 129},
            {"why": "starts with a dash", "id": "-" + kernel_id},
            {"why": "starts with a dot", "id": ".hidden"},
            {"why": "path separator", "id": "../etc"},
            {"why": "space", "id": "a b"},
            {"why": "non-ASCII digit", "id": "abc\u0663"},
        ],
    }


def main() -> None:
    key = RSA.generate(2048)
    server = ServerKey(key)
    kernel_id = "2f4a9c1e-3b7d-4e1a-9c0f-5d6e7f8a9b0c"
    conn = {
        "shell_port": 40001, "iopub_port": 40002, "stdin_port": 40003, "control_port": 40004,
        "hb_port": 40005, "ip": "127.0.0.1", "key": "c0ffee00-dead-beef-0000-123456789abc",
        "transport": "tcp", "signature_scheme": "hmac-sha256", "kernel_name": "",
        "comm_port": 40006, "comm_key": b64encode(fixed(0xA0, 32)),
        "launch_token": "t0k3n-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "pid": 4242, "pgid": 4242,
        "kernel_id": kernel_id,
    }
    aes_key, mac_key, iv, seed = fixed(0x10, 32), fixed(0x40, 32), fixed(0x70, 16), fixed(0x90, 32)
    plaintext = json.dumps(conn, separators=(",", ":"))
    line = seal_report(conn, kernel_id=kernel_id, public_key_b64=server.public_key_b64,
                       aes_key=aes_key, mac_key=mac_key, iv=iv, oaep_randfunc=lambda n: seed[:n])
    envelope = json.loads(line)
    comm_key, nonce = fixed(0xA0, 32), fixed(0xC0, 32)
    greet, _ = greeting(nonce)
    requests = []
    for op, params in (("ping", {}), ("interrupt", {}), ("shutdown", {"grace": 5})):
        req_line = sign_request(comm_key, nonce, op, **params)
        requests.append({"op": op, "params": params, "line": req_line.decode().rstrip("\n"),
                         "mac_hex": comm_mac(comm_key, nonce, json.loads(req_line)["request"].encode()).hex()})
    tail = "AAAA" if envelope["ciphertext"][-4:] != "AAAA" else "BBBB"
    tampered = dict(envelope, ciphertext=envelope["ciphertext"][:-4] + tail)
    other_nonce_line = sign_request(comm_key, fixed(0x01, 32), "kill").decode().rstrip("\n")
    vectors = {
        "protocol": "kernelfleet",
        "version": 2,
        "about": "Fixed inputs and expected outputs for protocol v2 (docs/protocol.md). The private key is a test key.",
        "server_private_key_pem": key.export_key().decode(),
        "public_key": server.public_key_b64,
        "report": {
            "kernel_id": kernel_id,
            "launch_token": conn["launch_token"],
            "plaintext": plaintext,
            "aes_key_hex": aes_key.hex(), "mac_key_hex": mac_key.hex(), "iv_hex": iv.hex(),
            "oaep_seed_hex": seed.hex(),
            "line": line.decode().rstrip("\n"),
        },
        "comm": {
            "comm_key_hex": comm_key.hex(), "nonce_hex": nonce.hex(),
            "greeting": greet.decode().rstrip("\n"),
            "requests": requests,
            "reply_ok": '{"ok":true,"alive":true}',
        },
        "reject": [
            {"why": "ciphertext changed after the MAC was made", "line": json.dumps(tampered, separators=(",", ":"))},
            {"why": "launch token does not match", "line": line.decode().rstrip("\n"), "launch_token": "another-token"},
            {"why": "version 1 envelope field", "line": json.dumps(dict(envelope, version=1), separators=(",", ":"))},
            {"why": "comm request MAC made for another nonce", "comm_line": other_nonce_line},
        ],
        "kernel_ids": kernel_id_cases(kernel_id),
    }
    json.dump(vectors, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
