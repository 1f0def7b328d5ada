"""kubelite's PKI, as kubeadm lays out a cluster's: a CA it generates, the API server's serving certificate signed
by it, and client certificates whose subject is the user (CN) and its groups (O), as the API server maps them.

``KubeLite`` (server.py) makes one ``ClusterCA`` per instance, serves HTTPS with ``server_context`` and writes the
CA into every kubeconfig (``certificate-authority-data``) and service-account directory (``ca.crt``).
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = _dt.timedelta(days=2)


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM private key (PKCS#8, unencrypted: test material)."""

    cert_pem: bytes
    key_pem: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signatures always; certificate and CRL signing for the CA only."""
    return x509.KeyUsage(digital_signature=True, key_cert_sign=ca, crl_sign=ca, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                         decipher_only=False)


class ClusterCA:
    """A self-signed CA (``kubernetes-ca``) that signs the serving certificate and client certificates."""

    def __init__(self, common_name: str = "kubernetes-ca") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        start = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
        name = _name(common_name)
        self._cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self._cert.public_bytes(serialization.Encoding.PEM)

    def _issue(self, subject: x509.Name, usage: x509.ObjectIdentifier,
               alt_names: list[x509.GeneralName] | None = None) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        start = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self._cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                           critical=False)
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def serving_pair(self, hosts: list[str]) -> KeyPair:
        """The API server's certificate (CN ``kube-apiserver``) for ``hosts`` (IP addresses or DNS names), plus the
        in-cluster names every API server certificate carries."""
        names: list[x509.GeneralName] = []
        for host in dict.fromkeys([*hosts, "localhost", "kubernetes", "kubernetes.default",
                                   "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        return self._issue(_name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, names)

    def client_pair(self, user: str, groups: tuple[str, ...] = ()) -> KeyPair:
        """A client certificate for ``user`` in ``groups``: the subject's CN and O fields, as the API server's x509
        authenticator reads them."""
        return self._issue(_name(user, groups), ExtendedKeyUsageOID.CLIENT_AUTH)

    def server_context(self, serving: KeyPair) -> ssl.SSLContext:
        """TLS for the API: the serving certificate, and client certificates verified against this CA when a client
        offers one (optional, as on a real API server where tokens are the other way in)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=self.cert_pem.decode())
        context.verify_mode = ssl.CERT_OPTIONAL
        with tempfile.TemporaryDirectory() as tmp:  # the ssl module loads a key pair from files only
            cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            cert.write_bytes(serving.cert_pem)
            key.write_bytes(serving.key_pem)
            key.chmod(0o600)
            context.load_cert_chain(cert, key)
        return context


def peer_identity(peer_cert: dict[str, object] | None) -> tuple[str, tuple[str, ...]] | None:
    """(user, groups) from a verified peer certificate as ``SSLObject.getpeercert()`` returns it: CN is the user,
    each O a group; None without a certificate."""
    if not peer_cert:
        return None
    user = ""
    groups: list[str] = []
    for rdn in peer_cert.get("subject", ()):  # type: ignore[union-attr]
        for key, value in rdn:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    return (user, tuple(groups)) if user else None
