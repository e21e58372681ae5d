"""Which server certificates the client trusts: one value shared by HTTPS and WSS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import frozen
from OpenSSL import SSL
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    CertificateOptions,
    TLSVersion,
    optionsForClientTLS,
)
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from pistatsd.pem import load_certificates, trust_root

if TYPE_CHECKING:  # not re-exported by twisted.internet.ssl
    from twisted.internet._sslverify import IOpenSSLTrustRoot
    from twisted.protocols.tls import TLSMemoryBIOProtocol

_MINIMUM = TLSVersion.TLSv1_2


def load_cafile(data: bytes, name: str) -> IOpenSSLTrustRoot:
    """A trust root made of every PEM certificate in C{data} (a CA bundle or one self-signed cert).

    Raises C{ValueError} naming the file when it holds no usable certificate, so
    a wrong path or a private key given by mistake is a usage error, not a
    confusing handshake failure later.
    """
    try:
        return trust_root(load_certificates(data))
    except ValueError as e:
        raise ValueError(f"--cafile {name}: {e}") from None


@implementer(IOpenSSLClientConnectionCreator)
class _Unverified:
    """TLS without any certificate check (C{--insecure}); still sends SNI and requires TLS 1.2."""

    def __init__(self, hostname: str) -> None:
        self._server_name = (
            None if isIPAddress(hostname) or isIPv6Address(hostname) else hostname.encode("idna")
        )
        self._options = CertificateOptions(raiseMinimumTo=_MINIMUM)

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        """A connection whose peer certificate is accepted whatever it is."""
        connection = self._options.clientConnectionForTLS(tlsProtocol)
        if self._server_name is not None:
            connection.set_tlsext_host_name(self._server_name)
        return connection


@frozen
class Trust:
    """How server certificates are checked.

    C{root=None, verify=True}: the system's CA store (the default);
    C{root=...}: only that CA / self-signed certificate (C{--cafile});
    C{verify=False}: nothing is checked (C{--insecure}).
    """

    root: IOpenSSLTrustRoot | None = None
    verify: bool = True

    def creator(self, hostname: str) -> IOpenSSLClientConnectionCreator:
        """The TLS settings for a connection to C{hostname} (checked against the certificate)."""
        if not self.verify:
            return _Unverified(hostname)
        return optionsForClientTLS(
            hostname,
            trustRoot=self.root,
            extraCertificateOptions={"raiseMinimumTo": _MINIMUM},
        )


@implementer(IPolicyForHTTPS)
@frozen
class TrustPolicy:
    """Adapts a L{Trust} to what C{twisted.web.client.Agent} asks for, so treq and
    Autobahn verify certificates in exactly the same way."""

    trust: Trust

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        """TLS settings for one HTTPS connection."""
        return self.trust.creator(hostname.decode("ascii"))
