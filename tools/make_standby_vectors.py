"""Regenerate docs/protocol-vectors-2.1.json: fixed inputs and the exact bytes of protocol 2.1's standby messages.

Protocol 2.1 (docs/protocol.md, section 8) adds a standby's registration and the server's claim to version 2;
the version-2 file (protocol-vectors.json) is unchanged. Usage:
python tools/make_standby_vectors.py > docs/protocol-vectors-2.1.json
"""

from __future__ import annotations

import json
import sys

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from kernelfleet.protocol import ServerKey
from kernelfleet.protocol.standby import Claim, Registration, seal_claim, seal_registration


def fixed(byte: int, n: int) -> bytes:
    return bytes((byte + i) % 256 for i in range(n))


def main() -> None:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption()).decode()
    server = ServerKey.from_pem(pem)
    standby_id, pool = "standby-0a1b2c3d4e5f60718293", "kf_python-3e1f0c9a7b2d"
    token = "st4ndby-t0k3n-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    claim_key, nonce = fixed(0x20, 64), fixed(0xC0, 32)
    aes_key, mac_key, iv, seed = fixed(0x10, 32), fixed(0x40, 32), fixed(0x70, 16), fixed(0x90, 32)
    registration_line = seal_registration(
        standby_id=standby_id, pool=pool, token=token, claim_key=claim_key, nonce=nonce,
        public_key_b64=server.public_key_b64, pid=4242, launcher="python/0.1.0",
        aes_key=aes_key, mac_key=mac_key, iv=iv, oaep_randfunc=lambda n: seed[:n])
    registration = Registration(standby_id, pool, claim_key, nonce)
    claim = Claim("2f4a9c1e-3b7d-4e1a-9c0f-5d6e7f8a9b0c", "t0k3n-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
                  {"KERNEL_ID": "2f4a9c1e-3b7d-4e1a-9c0f-5d6e7f8a9b0c", "KERNEL_USERNAME": "alice",
                   "KERNEL_EXTRA": "value"}, "/home/alice/work", "0..0")
    claim_iv = fixed(0x05, 16)
    claim_line = seal_claim(claim, registration, iv=claim_iv)
    other_pool = seal_claim(claim, Registration(standby_id, "another-pool", claim_key, nonce), iv=claim_iv)
    other_key = seal_claim(claim, Registration(standby_id, pool, fixed(0x33, 64), nonce), iv=claim_iv)
    other_nonce = seal_claim(claim, Registration(standby_id, pool, claim_key, fixed(0x01, 32)), iv=claim_iv)
    vectors = {
        "protocol": "kernelfleet",
        "version": 2,
        "minor": 1,
        "about": "Fixed inputs and expected outputs for protocol 2.1's standby messages (docs/protocol.md, section 8). "
                 "The private key is a test key.",
        "server_private_key_pem": pem,
        "public_key": server.public_key_b64,
        "registration": {
            "standby_id": standby_id, "pool": pool, "token": token, "pid": 4242, "launcher": "python/0.1.0",
            "claim_key_hex": claim_key.hex(), "nonce_hex": nonce.hex(),
            "aes_key_hex": aes_key.hex(), "mac_key_hex": mac_key.hex(), "iv_hex": iv.hex(),
            "oaep_seed_hex": seed.hex(),
            "line": registration_line.decode().rstrip("\n"),
        },
        "claim": {**claim.to_json(), "iv_hex": claim_iv.hex(), "line": claim_line.decode().rstrip("\n")},
        "reject_claims": [
            {"why": "claim for another pool", "line": other_pool.decode().rstrip("\n")},
            {"why": "claim made without this standby's claim key", "line": other_key.decode().rstrip("\n")},
            {"why": "claim made for another registration's nonce", "line": other_nonce.decode().rstrip("\n")},
        ],
    }
    json.dump(vectors, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
