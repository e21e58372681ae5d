"""Key material for the TLS ports: PEM files, and the self-signed certificate made once.

A key and certificate come from files the user names (checked here, so a
wrong path, an encrypted key or a key that belongs to another certificate
stops start-up with one line), or from C{<state dir>/tls/}, where pistatsd
generates a self-signed pair the first time it needs one and reuses it on
every restart, so a browser's exception or a client's C{--cafile} keeps
working.

Problems raise L{pistatsd.config.ConfigError}; the caller adds the option.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import os
import socket
from typing import TypeGuard, get_args

from attrs import evolve, frozen
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.logger import Logger

from pistatsd import pem
from pistatsd.config import ConfigError
from pistatsd.files import write_atomically

_log = Logger()

#: How long a generated certificate is valid.  Nobody rotates the certificate
#: of a Raspberry Pi in a cupboard; ten years outlives the SD card.
SELF_SIGNED_DAYS = 3650


@frozen
class KeyMaterial:
    """A private key, the certificate it belongs to, and the chain sent with it.

    @ivar generated: True for the self-signed certificate pistatsd made itself.
    """

    key: CertificateIssuerPrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key_path: str
    cert_path: str
    generated: bool = False

    @property
    def fingerprint(self) -> str:
        """The certificate's SHA-256 fingerprint, as browsers and C{openssl x509} show it."""
        return fingerprint(self.certificate)


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, as colon-separated upper-case hex."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def read(path: str, what: str) -> bytes:
    """The contents of a file, or a L{ConfigError} saying which file (C{what}) and why."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror or e}") from None


def load_certificates(path: str, what: str) -> list[x509.Certificate]:
    """Every PEM certificate in a file (a bundle, or a certificate with its key).

    @raise ConfigError: when the file is unreadable or holds no certificate.
    """
    data = read(path, what)
    try:
        return pem.load_certificates(data)
    except ValueError:
        raise ConfigError(f"{what} {path} holds no PEM certificate") from None


def _is_issuer_key(key: object) -> TypeGuard[CertificateIssuerPrivateKeyTypes]:
    """Whether C{key} can sign a certificate: one of the classes of cryptography's union."""
    return isinstance(key, get_args(CertificateIssuerPrivateKeyTypes))


def load_key_material(key_path: str, cert_path: str, chain_path: str | None = None) -> KeyMaterial:
    """Load and check a PEM private key and certificate (the same file may hold both).

    The certificate file may hold the whole chain (Let's Encrypt's
    C{fullchain.pem}): the first certificate is the server's, the others are
    sent along with it.

    @raise ConfigError: when a file is missing or unreadable, holds no usable
        PEM data, the key is encrypted, or the key does not match the certificate.
    """
    key_pem = read(key_path, "key")
    leaf, *chain = load_certificates(cert_path, "certificate")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ConfigError(
            f"key {key_path} is protected by a passphrase; "
            "give pistatsd an unencrypted key file (mode 0600)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"key {key_path} holds no usable PEM private key") from None
    if not _is_issuer_key(key):
        raise ConfigError(f"key {key_path}: unsupported key type {type(key).__name__}")
    if key.public_key() != leaf.public_key():
        raise ConfigError(f"key {key_path} does not match certificate {cert_path}")
    if chain_path is not None:
        chain += load_certificates(chain_path, "certificate chain")
    return KeyMaterial(key, leaf, tuple(chain), key_path, cert_path)


def self_signed_paths(state_dir: str) -> tuple[str, str]:
    """Where the generated key and certificate live: C{<state_dir>/tls/key.pem, cert.pem}."""
    directory = os.path.join(state_dir, "tls")
    return os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")


def subject_alternative_names(hostname: str) -> list[x509.GeneralName]:
    """The names a generated certificate is valid for.

    The hostname, C{<hostname>.local} (how Raspberry Pis are reached over
    mDNS) when the hostname has no dot, C{localhost}, C{127.0.0.1} and C{::1}.
    """
    names: list[str] = []
    hostname = hostname.strip().rstrip(".").lower()
    if hostname and hostname.isascii() and not _is_address(hostname):
        names.append(hostname)
        if "." not in hostname and hostname != "localhost":
            names.append(hostname + ".local")
    if "localhost" not in names:
        names.append("localhost")
    general: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    general += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    return general


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def generate_self_signed(
    hostname: str, now: datetime.datetime | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh EC P-256 key and a self-signed certificate for it.

    P-256 rather than RSA: a handshake costs a Raspberry Pi a fraction of the
    CPU, and every TLS client of the last decade accepts it.  The validity
    starts a day early, for clients whose clocks run behind (a Pi without a
    real-time clock, before NTP catches up).
    """
    if now is None:
        now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = (hostname.strip().rstrip(".") or "localhost")[:64]
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pistatsd self-signed"),
        ]
    )
    public = key.public_key()
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(subject_alternative_names(hostname)), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def ensure_self_signed(
    state_dir: str, hostname: str | None = None, now: datetime.datetime | None = None
) -> KeyMaterial:
    """The generated key and certificate, made first if they are missing or expired.

    Files: C{<state_dir>/tls/key.pem} (mode 0600) and C{cert.pem}, in a 0700
    directory, each replaced atomically, so a power cut leaves either the old
    pair or the new one.  A lock keeps two processes sharing the state
    directory from interleaving their pairs.

    @raise ConfigError: when the directory or files cannot be created, or the
        existing pair is unusable (it is never silently overwritten).
    """
    if now is None:
        now = datetime.datetime.now(datetime.UTC)
    key_path, cert_path = self_signed_paths(state_dir)
    directory = os.path.dirname(key_path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if os.stat(directory).st_mode & 0o077:
            os.chmod(directory, 0o700)
        lock = os.open(os.path.join(directory, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise ConfigError(
            f"cannot create {directory} for the generated certificate: {e.strerror or e}"
        ) from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(key_path) and os.path.exists(cert_path):
            try:
                material = load_key_material(key_path, cert_path)
            except ConfigError as e:
                raise ConfigError(
                    f"generated certificate unusable ({e}); remove {directory} to make a new one"
                ) from None
            if material.certificate.not_valid_after_utc > now:
                return evolve(material, generated=True)
            _log.warn(
                "Generated certificate {cert_path} expired on {not_after}; making a new one",
                cert_path=cert_path,
                not_after=material.certificate.not_valid_after_utc.isoformat(),
            )
        key, certificate = generate_self_signed(hostname or socket.gethostname(), now)
        try:
            # Old certificate out, then the key, then the certificate: a crash
            # anywhere leaves no certificate, so the next start makes a whole
            # new pair instead of finding a key that does not match.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(cert_path)
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            write_atomically(key_path, key_pem, 0o600)
            write_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
        except OSError as e:
            raise ConfigError(
                f"cannot write the generated certificate to {directory}: {e.strerror or e}"
            ) from None
        _log.info(
            "Generated a self-signed certificate {cert_path} for {names}",
            cert_path=cert_path,
            names=", ".join(certificate_names(certificate)),
        )
        return KeyMaterial(key, certificate, (), key_path, cert_path, generated=True)
    finally:
        os.close(lock)


def certificate_names(certificate: x509.Certificate) -> list[str]:
    """The names and addresses a certificate is valid for, for the log."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in san.value]
