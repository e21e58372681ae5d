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
from collections.abc import Callable, Sequence

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.web import http
from twisted.web.resource import IResource
from twisted.web.server import Site

from pistatsd.web.accesslog import WallClockLogFormatter
from pistatsd.web.channel import GuardedChannel
from pistatsd.web.connections import ConnectionCounter
from pistatsd.web.early import Refusal, RefusalLog
from pistatsd.web.hosts import HostPolicy
from pistatsd.web.request import HttpDate, SiteRequest
from pistatsd.web.traffic import Traffic
from pistatsd.ws.origins import OriginPolicy


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
        assert self.transport is not None  # makeConnection sets it first
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
    @param connections: open connections against C{--max-connections},
        shared with the WebSocket hub (which counts the upgraded ones).
    @param traffic: the counts of answered requests and refused bodies.
    @param observers: called with every answered request (the route counts).
    @ivar linger_seconds: how long a connection answered early keeps
        draining its input at most; C{linger_bytes}: how much of it.
    """

    requestFactory = SiteRequest
    # The channel itself, not Twisted's HTTP/2-negotiating wrapper (the type the
    # base declares): pistatsd speaks HTTP/1.1 only.
    protocol = GuardedChannel  # type: ignore[assignment]
    linger_seconds = 5.0
    linger_bytes = 1 << 20

    def __init__(
        self,
        resource: IResource,
        *,
        reactor: IReactorTime,
        connections: ConnectionCounter | None = None,
        traffic: Traffic | None = None,
        observers: Sequence[Callable[[http.Request], None]] = (),
        max_body: int = 65536,
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
        self.request_deadline = request_deadline
        self.connections = connections if connections is not None else ConnectionCounter(1024)
        self.traffic = traffic if traffic is not None else Traffic()
        self.hosts = hosts if hosts is not None else HostPolicy(clock=reactor)
        self.origins = origins if origins is not None else OriginPolicy()
        self._observers = tuple(observers)
        self.refusals = RefusalLog(reactor)
        self.http_date = HttpDate(wall)

    @property
    def open_connections(self) -> int:
        """HTTP connections now open (upgraded WebSockets are the hub's)."""
        return self.connections.open("http")

    @property
    def connections_refused(self) -> int:
        """Connections refused at the connection cap since start."""
        return self.connections.refused

    @property
    def bodies_refused(self) -> int:
        """Request bodies refused for exceeding C{max_body} since start."""
        return self.traffic.bodies_refused

    @property
    def requests_total(self) -> int:
        """Requests answered since start, refused ones included."""
        return self.traffic.total

    def startFactory(self) -> None:
        super().startFactory()
        self.hosts.start()

    def stopFactory(self) -> None:
        super().stopFactory()
        self.refusals.stop()

    # At the cap the answer is a plain protocol, not an HTTP channel: any protocol
    # will do for the listening port, but the base class promises a channel.
    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:  # type: ignore[override]
        if not self.connections.admit():
            return _Refuse()
        return super().buildProtocol(addr)

    def connection_opened(self, channel: http.HTTPChannel) -> None:
        """Count a new HTTP connection."""
        self.connections.opened("http")

    def connection_closed(self, channel: http.HTTPChannel) -> None:
        """Count a closed (or upgraded) HTTP connection."""
        self.connections.closed("http")

    def answered_early(self, request: http.Request, refusal: Refusal) -> None:
        """A request the connection refused itself: counted and logged like the others."""
        address = request.getClientAddress()
        self.refusals.note(refusal, str(getattr(address, "host", address)))
        self.log(request)

    def log(self, request: http.Request) -> None:
        """Count every answered request; write the access log only when one is configured."""
        self.traffic.total += 1
        for observer in self._observers:
            observer(request)
        if self.logPath is not None:
            super().log(request)
