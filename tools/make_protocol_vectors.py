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


def port_range_cases() -> dict[str, object]:
    """PORT_RANGE values every launcher must parse alike (docs/protocol.md section 5): ``lower..upper`` of
    ASCII digits, blanks only around the whole value. The invalid ones passed int()/toInt/as.integer once."""
    return {
        "valid": [
            {"text": "40000..41000", "lower": 40000, "upper": 41000},
            {"text": " 40000..41000\n", "lower": 40000, "upper": 41000},
            {"text": "1024..65535", "lower": 1024, "upper": 65535},
            {"text": "01024..01024", "lower": 1024, "upper": 1024},
            {"text": "0..0", "lower": 0, "upper": 0},
            {"text": "", "lower": 0, "upper": 0},
        ],
        "invalid": [
            {"why": "plus sign", "text": "+1024..2024"},
            {"why": "minus sign", "text": "-1024..2024"},
            {"why": "digit-group underscores", "text": "1_024..2_024"},
            {"why": "non-ASCII digits", "text": "\u0661\u0660\u0662\u0664..\u0662\u0660\u0662\u0664"},
            {"why": "blanks around '..'", "text": "1024 .. 2024"},
            {"why": "non-ASCII blank around the value", "text": "\u00a01024..2024"},
            {"why": "exponent", "text": "1e3..2024"},
            {"why": "hexadecimal", "text": "0x400..2024"},
            {"why": "fraction", "text": "1024.5..2024"},
            {"why": "more than five digits", "text": "001024..2024"},
            {"why": "three dots", "text": "1024...2024"},
            {"why": "three ends", "text": "1024..2024..3024"},
            {"why": "no upper end", "text": "1024.."},
            {"why": "dash instead of '..'", "text": "1024-2024"},
            {"why": "below 1024", "text": "1023..2024"},
            {"why": "above 65535", "text": "1024..65536"},
            {"why": "lower above upper", "text": "2024..1024"},
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
        "port_ranges": port_range_cases(),
    }
    json.dump(vectors, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
