"""Checks on a request's head, made before its body is read or a resource sees it.

RFC 9112 asks for exactly one C{Host} in HTTP/1.1 (400 otherwise) and for
absolute-form targets (C{GET http://pi:8888/stats HTTP/1.1}) to be served
like origin-form ones, with the target's authority in place of C{Host}.
Then the C{Host} must be one of ours (L{pistatsd.web.hosts}: 421 otherwise,
against DNS rebinding), an C{Expect} must be one we understand (417), and a
request that may change something (any method but GET, HEAD, OPTIONS,
TRACE) must not come from another site's page: its C{Origin}, when a browser
sent one, must pass the same policy as WebSockets (403 otherwise).
"""

from __future__ import annotations

import re

from twisted.web.http_headers import Headers

from pistatsd.web.early import Refusal
from pistatsd.web.forwarded import browser_view
from pistatsd.web.hosts import HostPolicy, HostVerdict
from pistatsd.ws.origins import OriginPolicy

SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")


def check_request_line(line: bytes) -> Refusal | None:
    """505 for a well-formed request line of an HTTP version other than 1.0 and 1.1.

    Twisted's parser would answer a plain 400; other defects are left to it.
    """
    if line.endswith((b" HTTP/1.1", b" HTTP/1.0")):
        return None
    parts = line.split(b" ")
    if (
        len(parts) == 3
        and _VERSION.fullmatch(parts[2])
        and parts[2]
        not in (
            b"HTTP/1.0",
            b"HTTP/1.1",
        )
    ):
        return Refusal(505, "only HTTP/1.0 and HTTP/1.1 are served here")
    return None


def split_absolute(target: bytes) -> tuple[bytes, bytes] | None:
    """C{(authority, origin-form)} of an absolute-form target; None if it is not one.

    Raises C{ValueError} for an absolute-form target without a usable authority.
    """
    scheme, sep, rest = target.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        return None
    cuts = [i for i in (rest.find(b"/"), rest.find(b"?")) if i != -1]
    cut = min(cuts) if cuts else len(rest)
    authority, tail = rest[:cut], rest[cut:]
    if not authority or b"@" in authority:
        raise ValueError("absolute-form target without a plain host")
    if not tail.startswith(b"/"):
        tail = b"/" + tail
    return authority, tail


def check_head(
    method: bytes,
    target: bytes,
    version: bytes,
    headers: Headers,
    *,
    hosts: HostPolicy,
    origins: OriginPolicy,
    secure: bool,
    peer: object = None,
) -> Refusal | bytes:
    """The origin-form target to serve, or the refusal to answer with.

    An absolute-form target's authority replaces the C{Host} header in
    C{headers}, so the rest of the server sees one consistent host.  The
    Origin of a change is compared with what the browser saw
    (L{pistatsd.web.forwarded}: a local proxy's C{X-Forwarded-Proto}).
    """
    host_values = headers.getRawHeaders(b"host")
    if host_values is not None and len(host_values) > 1:
        return Refusal(400, "more than one Host header")
    if host_values is None and version == b"HTTP/1.1":
        return Refusal(400, "HTTP/1.1 requests need a Host header")
    host = host_values[0] if host_values else None
    if not target.startswith(b"/"):  # origin-form, nearly always: nothing to split
        try:
            absolute = split_absolute(target)
        except ValueError:
            return Refusal(400, "invalid request target")
        if absolute is not None:
            host, target = absolute
            headers.setRawHeaders(b"host", [host])
        elif target != b"*":
            return Refusal(400, "invalid request target")
    if host is not None:
        verdict = hosts.judge(host)
        if verdict is HostVerdict.INVALID:
            return Refusal(400, "invalid Host header")
        if verdict is HostVerdict.UNKNOWN:
            return Refusal(
                421, "this server does not answer to that host name (see --allowed-host)"
            )
    expect = headers.getRawHeaders(b"expect")
    if expect is not None and any(value.strip().lower() != b"100-continue" for value in expect):
        return Refusal(417, "only Expect: 100-continue is understood")
    if method not in SAFE_METHODS:
        origin = headers.getRawHeaders(b"origin")
        # Only a browser sends an Origin; what it saw matters only then.
        if origin is not None and (
            len(origin) != 1
            or not origins.allows(origin[0], *browser_view(headers, host, secure, peer))
        ):
            return Refusal(
                403, "pages of other origins cannot change anything here (see --allowed-origin)"
            )
    return target
