"""The capsule's TLS identity: one self-signed certificate, made once, kept forever.

Gemini clients trust on first use (TOFU, Gemini spec section 4.2): they pin the
certificate they saw first and warn loudly when it changes. So the key and
certificate are generated on first start into the state directory and reused
on every later start; a new certificate is made only when the host name it
names differs from the configured one (a different capsule anyway).

Nothing else is ever written to the state directory.
"""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger("onionclean.capsule")

CERT_NAME = "capsule-cert.pem"
KEY_NAME = "capsule-key.pem"
#: A fixed start date: the certificate does not tell when the capsule was set up.
NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
#: Long-lived on purpose: a TOFU pin should not break on an expiry nobody watches.
NOT_AFTER = datetime.datetime(2045, 1, 1, tzinfo=datetime.UTC)


def certificate_paths(state_dir: Path) -> tuple[Path, Path]:
    return state_dir / CERT_NAME, state_dir / KEY_NAME


def _names_host(cert_pem: bytes, hostname: str) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (ValueError, x509.ExtensionNotFound):
        return False
    return hostname.lower() in [n.lower() for n in san.value.get_values_for_type(x509.DNSName)]


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only, atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_certificate(hostname: str) -> tuple[bytes, bytes]:
    """A new ECDSA P-256 key and a self-signed certificate naming ``hostname`` (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ensure_certificate(state_dir: Path, hostname: str) -> tuple[Path, Path]:
    """Return (certfile, keyfile) in ``state_dir``, creating them on first start."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = certificate_paths(state_dir)
    if cert_path.is_file() and key_path.is_file():
        if _names_host(cert_path.read_bytes(), hostname):
            return cert_path, key_path
        log.warning("the stored certificate names another host; making a new one")
    cert_pem, key_pem = make_certificate(hostname)
    _write_private(key_path, key_pem)
    _write_private(cert_path, cert_pem)
    log.info("made a new TLS certificate in the state directory")
    return cert_path, key_path


def fingerprint(cert_path: Path) -> str:
    """SHA-256 fingerprint of the certificate, as operators compare it with clients'."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()
