"""Reading PEM certificate bundles: one loader for the TLS ports, the client and InfluxDB.

cryptography's C{load_pem_x509_certificates} reads every C{CERTIFICATE}
block of a bundle and skips the rest (a private key in the same file), so
nothing here splits PEM text by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography import x509
from OpenSSL import crypto
from twisted.internet.ssl import Certificate, trustRootFromCertificates

if TYPE_CHECKING:  # not re-exported by twisted.internet.ssl
    from twisted.internet._sslverify import IOpenSSLTrustRoot


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in PEM C{data} (a CA bundle, or a certificate with its key).

    @raise ValueError: C{"no PEM certificate in it"}, or C{"unreadable
        certificate (...)"} when a block does not parse; the caller names
        the file.
    """
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise ValueError("no PEM certificate in it") from None
        raise ValueError(f"unreadable certificate ({e})") from None
    if not certificates:
        raise ValueError("no PEM certificate in it")
    return certificates


def trust_root(certificates: Sequence[x509.Certificate]) -> IOpenSSLTrustRoot:
    """A Twisted trust root made of C{certificates} (the CAs a client accepts)."""
    return trustRootFromCertificates(
        [Certificate(crypto.X509.from_cryptography(c)) for c in certificates]
    )
