"""The server's RSA key pair: made once per server process, its public half handed to every launcher."""

from __future__ import annotations

from Crypto.Cipher import PKCS1_OAEP, PKCS1_v1_5
from Crypto.Hash import SHA256
from Crypto.PublicKey import RSA

from kernelfleet.protocol.constants import RSA_MIN_BITS
from kernelfleet.protocol.encoding import b64decode, b64encode


def load_public_key(public_key_b64: str) -> RSA.RsaKey:
    """Parse PUBLIC_KEY (base64 DER SubjectPublicKeyInfo) and refuse keys below the protocol minimum."""
    key = RSA.import_key(b64decode(public_key_b64, "PUBLIC_KEY"))
    if key.size_in_bits() < RSA_MIN_BITS:
        raise ValueError(f"PUBLIC_KEY is {key.size_in_bits()}-bit RSA; protocol v2 needs at least {RSA_MIN_BITS}")
    return key


def oaep(key: RSA.RsaKey, randfunc=None) -> PKCS1_OAEP.PKCS1OAEP_Cipher:
    """RSA-OAEP with SHA-256 for both the digest and MGF1 (the JVM defaults MGF1 to SHA-1: say it there)."""
    # pycryptodome's default mask generation is MGF1 over hashAlgo, i.e. MGF1-SHA-256.
    return PKCS1_OAEP.new(key, hashAlgo=SHA256, randfunc=randfunc)


class ServerKey:
    """Private key of one server process; the private half never leaves this object or reaches a log."""

    def __init__(self, key: RSA.RsaKey) -> None:
        if not key.has_private():
            raise ValueError("ServerKey needs a private key")
        self._key = key
        self.public_key_b64 = b64encode(key.publickey().export_key(format="DER"))

    @classmethod
    def generate(cls, bits: int = RSA_MIN_BITS) -> ServerKey:
        return cls(RSA.generate(max(bits, RSA_MIN_BITS)))

    @classmethod
    def from_pem(cls, pem: str | bytes) -> ServerKey:
        return cls(RSA.import_key(pem))

    def unwrap(self, wrapped: bytes) -> bytes:
        """OAEP-decrypt a report's key block; raises ValueError on any mismatch."""
        return oaep(self._key).decrypt(wrapped)

    def unwrap_legacy(self, wrapped: bytes) -> bytes | None:
        """PKCS#1 v1.5 decrypt for Gateway Provisioners' v1 reports; None when it does not decrypt."""
        sentinel = b""
        data = PKCS1_v1_5.new(self._key).decrypt(wrapped, sentinel)
        return data or None

    def __repr__(self) -> str:
        return f"ServerKey({self._key.size_in_bits()}-bit RSA, private half hidden)"
