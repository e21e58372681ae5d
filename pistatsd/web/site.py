"""The HTTP server: a twisted.web C{Site} with the limits a long-running daemon needs.

Twisted's C{Site} buffers any request body whole, accepts any number of
connections, keeps idle ones for twelve hours and logs every request through
the legacy log.  pistatsd refuses oversized bodies while they stream in,
caps concurrent connections, times idle ones out and logs requests only when
asked to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from pistatsd.web.accesslog import WallClockLogFormatter

_log = Logger()

_INTERNAL_ERROR = b'{"error":"internal server error"}'


class _DiscardBody:
    """Stands in for the body file of a refused request, so nothing is buffered."""

    def write(self, data: bytes) -> None:
        pass

    def seek(self, *args: Any) -> int:
        return 0

    def read(self, *args: Any) -> bytes:
        return b""

    def close(self) -> None:
        pass


class LimitedRequest(Request):
    """A request that refuses bodies over the site's C{max_body} as they arrive.

    A declared C{Content-Length} over the limit is refused before a byte of the
    body is read; a chunked body is counted and refused the moment it crosses
    the limit.  Either way the client gets a 413 and the connection is closed,
    so the rest of the body is never read.
    """

    _body_seen = 0
    _refused = False

    def gotLength(self, length: int | None) -> None:
        limit = self.channel.site.max_body
        if length is not None and length > limit:
            self._refuse_body(length)
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._body_seen += len(data)
        if self._body_seen > self.channel.site.max_body:
            self._refuse_body(None)
            return
        self.content.write(data)

    def _refuse_body(self, declared: int | None) -> None:
        site: PistatsdSite = self.channel.site
        self._refused = True
        self.content = _DiscardBody()
        # Twisted would answer "100 Continue" right after gotLength: the client
        # must not be invited to send a body we are refusing.
        self.requestHeaders.removeHeader(b"expect")
        site.bodies_refused += 1
        _log.info(
            "Refused a request body over {limit} bytes from {peer} (declared: {declared})",
            limit=site.max_body,
            peer=str(self.channel.transport.getPeer()),
            declared=declared,
        )
        body = b'{"error":"request body exceeds %d bytes"}' % (site.max_body,)
        self.channel.transport.write(
            b"HTTP/1.1 413 Content Too Large\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(body), body)
        )
        self.channel.loseConnection()

    def processingFailed(self, reason: Failure) -> Failure:
        """Log the traceback; the client gets a plain JSON 500, never the traceback."""
        _log.failure(
            "Unhandled error rendering {method} {uri}",
            failure=reason,
            method=self.method,
            uri=self.uri,
        )
        if self.finished or self._disconnected:
            return reason
        if self.startedWriting:
            # Too late for a status line; cut the response short instead.
            self.channel.loseConnection()
            return reason
        self.setResponseCode(http.INTERNAL_SERVER_ERROR)
        self.setHeader(b"content-type", b"application/json")
        self.setHeader(b"content-length", b"%d" % (len(_INTERNAL_ERROR),))
        self.write(_INTERNAL_ERROR)
        self.finish()
        return reason


class TrackedChannel(http.HTTPChannel):
    """An HTTP connection that the site counts, for the connection cap and /health."""

    site: PistatsdSite

    def connectionMade(self) -> None:
        super().connectionMade()
        self.site.connection_opened(self)

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        self.site.connection_closed(self)

    def detach(self) -> None:
        """The connection leaves HTTP (a WebSocket upgrade): stop counting it here."""
        self.site.connection_closed(self)


class _Refuse(Protocol):
    """Answers 503 and hangs up: used when the connection cap is reached."""

    _RESPONSE = (
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"Content-Type: application/json\r\n"
        b"Retry-After: 1\r\n"
        b"Content-Length: 37\r\n"
        b"Connection: close\r\n\r\n"
        b'{"error":"too many open connections"}'
    )

    def connectionMade(self) -> None:
        self.transport.write(self._RESPONSE)
        self.transport.loseConnection()


class PistatsdSite(Site):
    """The site every listening endpoint shares.

    @ivar open_connections: HTTP connections now open (WebSockets count
        themselves once upgraded).
    @ivar requests_total: requests answered since start.
    """

    requestFactory = LimitedRequest
    protocol = TrackedChannel

    def __init__(
        self,
        resource: IResource,
        *,
        reactor: IReactorTime,
        max_body: int = 65536,
        max_connections: int = 1024,
        idle_timeout: float = 60.0,
        access_log: str | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            resource,
            logPath=access_log,
            logFormatter=WallClockLogFormatter(wall),
            timeout=idle_timeout,
            reactor=reactor,
            parsePOSTFormSubmission=False,
        )
        self.max_body = max_body
        self.max_connections = max_connections
        self.open_connections = 0
        self.connections_refused = 0
        self.bodies_refused = 0
        self.requests_total = 0
        self.request_observers: list[Callable[[Request], None]] = []
        self._at_cap = False

    def buildProtocol(self, addr: IAddress) -> Protocol | None:
        if self.open_connections + self.extra_connections() >= self.max_connections:
            self.connections_refused += 1
            if not self._at_cap:
                self._at_cap = True
                _log.warn(
                    "Connection cap of {max_connections} reached; refusing new connections",
                    max_connections=self.max_connections,
                )
            return _Refuse()
        return super().buildProtocol(addr)

    def extra_connections(self) -> int:
        """Connections counted elsewhere (WebSockets); replaced by the composition root."""
        return 0

    def connection_opened(self, channel: http.HTTPChannel) -> None:
        """Count a new HTTP connection."""
        self.open_connections += 1

    def connection_closed(self, channel: http.HTTPChannel) -> None:
        """Count a closed (or upgraded) connection; note the end of a cap episode."""
        self.open_connections -= 1
        if self._at_cap and self.open_connections + self.extra_connections() < self.max_connections:
            self._at_cap = False
            _log.info(
                "Below the connection cap again after refusing {refused} connections in all",
                refused=self.connections_refused,
            )

    def log(self, request: Request) -> None:
        """Count every answered request; write the access log only when one is configured."""
        self.requests_total += 1
        for observer in self.request_observers:
            observer(request)
        if self.logPath is not None:
            super().log(request)
