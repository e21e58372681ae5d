"""What the browser saw, when a proxy on this machine relays it: for the Origin checks only.

Behind a TLS-terminating nginx, an C{https://} page reaches pistatsd over
plain HTTP: the connection's own scheme would make the page look
cross-origin.  A reverse proxy says what the browser used in
C{X-Forwarded-Proto} (and C{X-Forwarded-Host}, when it rewrites C{Host}).
Those headers are believed only from a peer on this machine (loopback or a
UNIX socket): anyone else could send them.  They change nothing but the
Origin comparison; the Host allow-list, and the sensors' rule that relayed
requests are remote, read the request as it is.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.web.http_headers import Headers


def is_local_peer(address: object) -> bool:
    """Whether a connection comes from this machine: a loopback address or a UNIX socket."""
    if isinstance(address, UNIXAddress):
        return True
    if isinstance(address, IPv4Address | IPv6Address):
        try:
            ip = ipaddress.ip_address(address.host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.is_loopback
    return False


def _single(headers: Headers, name: bytes) -> bytes | None:
    """The first value of a header sent once (a proxy's, C{a, b} lists cut to C{a})."""
    values = headers.getRawHeaders(name)
    if values is None or len(values) != 1:
        return None
    value = values[0].split(b",", 1)[0].strip()
    return value or None


def browser_view(
    headers: Headers, host: bytes | None, secure: bool, peer: object
) -> tuple[bytes | None, bool]:
    """The C{Host} and scheme (secure or not) the browser's page used.

    The connection's own, unless a proxy on this machine said otherwise.
    """
    if not is_local_peer(peer):
        return host, secure
    proto = _single(headers, b"x-forwarded-proto")
    if proto is not None and proto.lower() in (b"http", b"https"):
        secure = proto.lower() == b"https"
    forwarded_host = _single(headers, b"x-forwarded-host")
    if forwarded_host is not None:
        host = forwarded_host
    return host, secure
