"""The WebSocket session of C{echo} and C{watch}: Autobahn on an injected reactor.

A L{Session} owns everything one conversation needs to end well: the
time-outs, the clean close (1000), Ctrl-C, and turning whatever went wrong into
one line. Subclasses (L{pistatsd.client.echo}, L{pistatsd.client.watch}) only
say what to do with messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVarTuple, cast

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import ConnectionClosed
from twisted.internet.interfaces import IDelayedCall, IStreamClientEndpoint, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from pistatsd.client.failures import ClientError
from pistatsd.client.tls import Trust
from pistatsd.client.urls import BaseURL
from pistatsd.reactors import IPistatsdReactor

Write = Callable[[str], None]
Ts = TypeVarTuple("Ts")

#: Largest message accepted from the server (the broadcast hello carries history).
MAX_MESSAGE = 16 * 1024 * 1024
#: Longest stdin line for C{echo}; the server closes on messages over 64 KiB anyway.
MAX_LINE = 64 * 1024
#: C{echo} stops reading stdin while this many lines await their reply, so piping
#: a big file in never queues it all in memory.
HIGH_WATER, LOW_WATER = 64, 16
#: How long an interrupted session waits for the server's close frame.
CLOSE_GRACE = 2.0


def client_endpoint(
    reactor: IPistatsdReactor, base: BaseURL, trust: Trust, timeout: float
) -> IStreamClientEndpoint:
    """TCP to the daemon, wrapped in TLS (checked as C{trust} says) for C{https} base URLs."""
    endpoint: IStreamClientEndpoint = HostnameEndpoint(reactor, base.host, base.port, timeout)
    if base.secure:
        endpoint = wrapClientTLS(trust.creator(base.host), endpoint)
    return endpoint


_UNCLEAN = re.compile(r'^connection was closed uncleanly \("(?P<why>.*)"\)$')


def _plain(reason: str | None) -> str:
    """Autobahn's close reason without its wrapper: C{upgrade failed [404]: Not Found}."""
    match = _UNCLEAN.match(reason or "")
    why = match.group("why") if match else reason
    if not why or why.startswith("peer dropped the TCP connection"):
        return "the server closed the connection"
    return why


class _Protocol(WebSocketClientProtocol):
    """Forwards Autobahn's callbacks to the factory's session.

    It also keeps the transport-level reason the connection was lost: Autobahn
    reports a failed TLS handshake only as "closed uncleanly", which would hide
    the one fact the user needs (the certificate was not trusted).
    """

    _lost: Failure | None = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = reason
        super().connectionLost(reason)

    def onOpen(self) -> None:
        self._forward(self.factory.session.opened, self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self._forward(self.factory.session.received, payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self._forward(self.factory.session.closed, wasClean, code, reason, self._lost)

    def _forward(self, handler: Callable[[*Ts], None], *args: *Ts) -> None:
        """Call the session; an exception ends the session (Autobahn would only log it)."""
        try:
            handler(*args)
        except Exception:
            self.factory.session.fail(Failure())


class _Factory(WebSocketClientFactory):
    """Autobahn's factory, carrying the session its protocols report to."""

    session: Session


class Session:
    """One WebSocket conversation; C{start()} gives a Deferred of the exit status.

    Failures errback that Deferred with an exception L{describe} can word.
    """

    #: Exit status after Ctrl-C.
    interrupt_code = 130

    def __init__(
        self,
        reactor: IPistatsdReactor,
        base: BaseURL,
        path: str,
        endpoint: IStreamClientEndpoint,
        timeout: float,
        warn: Write,
    ) -> None:
        self.reactor = reactor
        self.url = base.ws(path)
        self.target = base.netloc
        self.timeout = timeout
        self.warn = warn
        self.protocol: _Protocol | None = None
        self.result: Deferred[int] = Deferred()
        self._endpoint = endpoint
        self._connecting: Deferred[Any] | None = None
        self._wire: _Protocol | None = None
        self._connected = False
        self._closing = False
        self._exit_code = 0
        self._settled = False
        self._watchdog: IDelayedCall | None = None
        self._waiters: list[Deferred[None]] = []

    # -- life cycle -------------------------------------------------------

    def start(self) -> Deferred[int]:
        """Connect and open the WebSocket; the Deferred fires when the session is over."""
        factory = _Factory(self.url, reactor=self.reactor)
        factory.protocol = _Protocol
        factory.session = self
        factory.setProtocolOptions(
            maxFramePayloadSize=MAX_MESSAGE,
            maxMessagePayloadSize=MAX_MESSAGE,
            openHandshakeTimeout=0,  # our own watchdog, on the injected reactor, covers it
        )
        self.arm(self.timeout, "the WebSocket handshake")
        self._connecting = self._endpoint.connect(factory)
        self._connecting.addCallbacks(self._tcp_connected, self._not_connected)
        return self.result

    def _tcp_connected(self, protocol: _Protocol) -> None:
        self._wire = protocol
        self._connected = True

    def _not_connected(self, failure: Failure) -> None:
        self.fail(failure)

    def opened(self, protocol: _Protocol) -> None:
        """The handshake succeeded: hand over to the subclass."""
        self.protocol = protocol
        self.disarm()
        if not self._settled:
            self.on_open()

    def closed(
        self, was_clean: bool, code: int | None, reason: str | None, lost: Failure | None
    ) -> None:
        """The connection is gone; decide whether that was the plan."""
        self._connected = False
        if self._settled:
            return
        if self.protocol is None:
            self.fail(self._handshake_error(reason, lost))
        elif self._closing:
            self.finish(self._exit_code)
        else:
            self.server_closed(was_clean, code, reason, lost)

    def _handshake_error(self, reason: str | None, lost: Failure | None) -> BaseException | Failure:
        if lost is not None and not lost.check(ConnectionClosed):
            return lost  # TLS and similar errors: L{describe} words them
        return ClientError(f"WebSocket handshake with {self.url} failed: {_plain(reason)}")

    def server_closed(
        self, was_clean: bool, code: int | None, reason: str | None, lost: Failure | None
    ) -> None:
        """The server ended the session before we did: a failure unless a subclass says not."""
        if was_clean:
            detail = f"{code}: {reason}" if reason else f"{code}"
            self.fail(ClientError(f"the server closed the WebSocket {self.url} ({detail})"))
        elif lost is not None and not lost.check(ConnectionClosed):
            self.fail(lost)
        else:
            self.fail(ClientError(f"the connection to {self.target} was lost"))

    def close(self) -> None:
        """Start the closing handshake (1000); the session ends when it completes."""
        if self._closing or self.protocol is None:
            return
        self._closing = True
        self.disarm()
        self.protocol.sendClose(1000)

    def interrupt(self) -> Deferred[None] | None:
        """Ctrl-C: close cleanly if open (waiting at most L{CLOSE_GRACE}), else just stop."""
        if self._settled:
            return None
        waiter = self.when_settled()
        self._exit_code = self.interrupt_code
        if self.protocol is None or self._closing:
            self.finish(self.interrupt_code)
        else:
            self.close()
            self._watchdog = self.reactor.callLater(CLOSE_GRACE, self.finish, self.interrupt_code)
        return waiter

    # -- ending -----------------------------------------------------------

    def finish(self, code: int) -> None:
        """End with exit status C{code}."""
        self._settle(code)

    def fail(self, error: BaseException | Failure) -> None:
        """End with C{error} (a L{ClientError} or a network error L{describe} knows)."""
        self._settle(error if isinstance(error, Failure) else Failure(error))

    def _settle(self, outcome: int | Failure) -> None:
        if self._settled:
            return
        self._settled = True
        self.disarm()
        if self._connecting is not None and not self._connecting.called:
            self._connecting.cancel()
        if self._connected and self._wire is not None and self._wire.transport is not None:
            # TCP, or TLS over TCP: both can abort
            cast(ITCPTransport, self._wire.transport).abortConnection()
        self.flush().addBoth(lambda _: self._fire(outcome))

    def _fire(self, outcome: int | Failure) -> None:
        if isinstance(outcome, Failure):
            self.result.errback(outcome)
        else:
            self.result.callback(outcome)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def when_settled(self) -> Deferred[None]:
        """A Deferred that fires (with None) once the session is over, whatever the outcome."""
        if self._settled and self.result.called:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def flush(self) -> Deferred[None]:
        """Make sure everything printed has been written out before the exit status is known."""
        return succeed(None)

    # -- time-outs --------------------------------------------------------

    def arm(self, seconds: float, waiting_for: str) -> None:
        """(Re)start the watchdog: fail if nothing calls C{arm}/C{disarm} within C{seconds}."""
        self.disarm()
        self._watchdog = self.reactor.callLater(seconds, self._timed_out, seconds, waiting_for)

    def disarm(self) -> None:
        """Stop the watchdog."""
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None

    def _timed_out(self, seconds: float, waiting_for: str) -> None:
        self._watchdog = None
        self.fail(
            ClientError(
                f"timed out after {seconds:g} s waiting for {waiting_for}"
                f" from {self.target} (see --timeout)"
            )
        )

    # -- for subclasses ---------------------------------------------------

    def on_open(self) -> None:
        """The WebSocket is open."""

    def received(self, payload: bytes, is_binary: bool) -> None:
        """A message arrived."""
