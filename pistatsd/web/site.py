"""The HTTP server: a twisted.web C{Site} with the limits a long-running daemon needs.

Twisted's C{Site} buffers any request body whole, accepts any number of
connections, keeps idle ones for twelve hours, serves any C{Host} and logs
every request through the legacy log.  pistatsd refuses oversized bodies
while they stream in (L{pistatsd.web.limits}), caps concurrent connections,
times idle and slow ones out, answers every limit with a status line
(L{pistatsd.web.channel}), serves only its own host names
(L{pistatsd.web.hosts}), counts every request, refused ones included, and
writes an access log only when asked to.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from pistatsd.web.accesslog import WallClockLogFormatter
from pistatsd.web.channel import GuardedChannel
from pistatsd.web.early import Refusal, RefusalLog
from pistatsd.web.hosts import HostPolicy
from pistatsd.web.limits import LimitedRequest
from pistatsd.ws.origins import OriginPolicy

_log = Logger()


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

    @param hosts: which C{Host} names are served; loopback names only if not given.
    @param origins: which browser origins may send changes (POST, PUT,
        DELETE...); same-origin only if not given.
    @param request_deadline: seconds to read one request's headers and body,
        from its first byte (nginx's C{client_header_timeout} and
        C{client_body_timeout}); 408 after it.
    @ivar open_connections: HTTP connections now open (WebSockets count
        themselves once upgraded).
    @ivar requests_total: requests answered since start, refused ones included.
    @ivar linger_seconds: how long a connection answered early keeps
        draining its input at most; C{linger_bytes}: how much of it.
    """

    requestFactory = LimitedRequest
    protocol = GuardedChannel
    linger_seconds = 5.0
    linger_bytes = 1 << 20

    def __init__(
        self,
        resource: IResource,
        *,
        reactor: IReactorTime,
        max_body: int = 65536,
        max_connections: int = 1024,
        idle_timeout: float = 60.0,
        request_deadline: float = 60.0,
        access_log: str | None = None,
        hosts: HostPolicy | None = None,
        origins: OriginPolicy | None = None,
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
        self.request_deadline = request_deadline
        self.hosts = hosts if hosts is not None else HostPolicy(clock=reactor)
        self.origins = origins if origins is not None else OriginPolicy()
        self.open_connections = 0
        self.connections_refused = 0
        self.bodies_refused = 0
        self.requests_total = 0
        self.request_observers: list[Callable[[Request], None]] = []
        self.refusals = RefusalLog(reactor)
        self._at_cap = False

    def startFactory(self) -> None:
        super().startFactory()
        self.hosts.start()

    def stopFactory(self) -> None:
        super().stopFactory()
        self.refusals.stop()

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

    def answered_early(self, request: Request, refusal: Refusal) -> None:
        """A request the connection refused itself: counted and logged like the others."""
        address = request.getClientAddress()
        self.refusals.note(refusal, str(getattr(address, "host", address)))
        self.log(request)

    def log(self, request: Request) -> None:
        """Count every answered request; write the access log only when one is configured."""
        self.requests_total += 1
        for observer in self.request_observers:
            observer(request)
        if self.logPath is not None:
            super().log(request)
