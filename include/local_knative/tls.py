"""The API server's TLS certificate with ``--auth``: a local CA and a server certificate for 127.0.0.1.

kubectl (client-go) sends a bearer token only over TLS, so access control needs HTTPS. Both are made once
in the data directory (``ca.crt``; ``apiserver.crt`` / ``apiserver.key``, readable by this user only) and
kept across restarts; the kubeconfig carries the CA as ``certificate-authority-data``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_FILE = "ca.crt"
CERT_FILE = "apiserver.crt"
KEY_FILE = "apiserver.key"
_VALID_DAYS = 3650


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


def ensure_certificates(data_dir: Path) -> Path:
    """Make the CA and the server certificate in ``data_dir`` unless they exist; return the CA's path."""
    ca_path, cert_path, key_path = data_dir / CA_FILE, data_dir / CERT_FILE, data_dir / KEY_FILE
    if ca_path.exists() and cert_path.exists() and key_path.exists():
        return ca_path
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("local-knative-ca", ca_key, "local-knative-ca", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("local-knative-apiserver", key, "local-knative-ca", ca_key, ca=False)
    pem = serialization.Encoding.PEM
    key_bytes = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    ca_path.write_bytes(ca.public_bytes(pem))
    return ca_path


def server_context(data_dir: Path) -> ssl.SSLContext:
    """Return the TLS context the API server listens with (certificates made when missing)."""
    ensure_certificates(data_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(data_dir / CERT_FILE, data_dir / KEY_FILE)
    return context
