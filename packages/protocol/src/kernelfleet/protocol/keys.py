"""The server's RSA key pair: made once per server process, its public half handed to every launcher."""

from __future__ import annotations

from typing import Any

from Crypto.Cipher import PKCS1_OAEP
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
    """Private key of one server process; the private half never leaves this object or reaches a log.

    Server-only, so it uses the ``cryptography`` package (OpenSSL, already required by asyncssh on
    the host): its RSA private operation is about twice as fast as pycryptodome's and releases the
    GIL, which is what lets hundreds of reports be unwrapped at once on worker threads. Launchers
    never import it and need only pycryptodome.
    """

    def __init__(self, key: Any) -> None:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self._key = key
        der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        self.public_key_b64 = b64encode(der)

    @classmethod
    def generate(cls, bits: int = RSA_MIN_BITS) -> ServerKey:
        from cryptography.hazmat.primitives.asymmetric import rsa

        return cls(rsa.generate_private_key(public_exponent=65537, key_size=max(bits, RSA_MIN_BITS)))

    @classmethod
    def from_pem(cls, pem: str | bytes) -> ServerKey:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        return cls(load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None))

    def unwrap(self, wrapped: bytes) -> bytes:
        """OAEP(SHA-256, MGF1-SHA-256) decrypt a report's key block; raises ValueError on any mismatch."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        oaep_padding = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        return self._key.decrypt(wrapped, oaep_padding)

    def unwrap_legacy(self, wrapped: bytes) -> bytes | None:
        """PKCS#1 v1.5 decrypt for Gateway Provisioners' v1 reports; None when it does not decrypt."""
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            return self._key.decrypt(wrapped, padding.PKCS1v15())
        except ValueError:
            return None

    def __repr__(self) -> str:
        return f"ServerKey({self._key.key_size}-bit RSA, private half hidden)"
