"""One HTTP connection, held to the limits a daemon on an open network needs.

Twisted's C{HTTPChannel} closes silently on an over-long line, answers a bare
400 with no body to everything else it dislikes, restarts its idle timeout
on every line (so a client trickling one header line at a time is never
timed out) and closes with the request body unread (so the client gets a
connection reset instead of the error).  L{GuardedChannel} answers instead:

 - 414 for a request line over C{MAX_LENGTH}, 431 for a longer header line,
   more than C{maxHeaders} headers or more than C{max_head_bytes} in all;
 - 408 once reading one request's headers and body has taken longer than
   the site's C{request_deadline}, counted from its first byte;
 - 400 (JSON) for whatever the parser refuses, a bare LF included;
 - the checks of L{pistatsd.web.checks} (Host, Expect, cross-site changes).

Each answer is counted like any other request, and the connection then
lingers (L{pistatsd.web.linger}): the client reads the answer, not a reset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http

from pistatsd.web.checks import check_head, check_request_line
from pistatsd.web.early import Refusal
from pistatsd.web.limits import BoundedChunkedDecoder
from pistatsd.web.linger import LingeringClose

if TYPE_CHECKING:
    from pistatsd.web.site import PistatsdSite


def _bare_lf(pending: bytes) -> bool:
    """Whether the line being read holds an LF that does not end a CRLF."""
    lf = pending.find(b"\n")
    if lf == -1:
        return False
    crlf = pending.find(b"\r\n")
    return crlf == -1 or lf < crlf


class _Connection(Protocol):
    """What an answered-early channel needs of its transport (TCP or TLS)."""

    disconnecting: bool

    def write(self, data: bytes) -> None: ...

    def abortConnection(self) -> None: ...


class _Consumer(Protocol):
    """The channel's C{_networkProducer}: the transport (or Twisted's stand-in for one
    that cannot pause), which is also the consumer the channel registered with."""

    def unregisterProducer(self) -> None: ...

    def resumeProducing(self) -> None: ...


#: The base class, called by name in the overrides run for every line and
#: request: zero-argument C{super()} builds an object at each call.
_HTTPChannel = http.HTTPChannel


class GuardedChannel(http.HTTPChannel):
    """An HTTP connection with answered limits, a read deadline and lingering close.

    The site counts it, for the connection cap and C{/health}.
    """

    site: PistatsdSite

    #: Longest request line or header line (LineReceiver's own limit).
    MAX_LENGTH = 16384
    #: Header lines in one request (Apache's C{LimitRequestFields}).
    maxHeaders = 100
    #: Request line and headers together (nginx: 4 buffers of 8 KiB).
    max_head_bytes = 32768
    # Twisted's own total would answer a bare 400 first; ours answers 431.
    totalHeadersSize = 1 << 62

    _deadline: IDelayedCall | None = None
    #: The idle timer's one pending call, and when the connection was last active.
    _idle_call: IDelayedCall | None = None
    _idle_from = 0.0
    #: When the first byte of the request being read arrived; None between requests.
    _reading_since: float | None = None
    _linger: LingeringClose | None = None
    _host: IAddress | None = None
    _peer: IAddress | None = None
    _secure: bool | None = None
    _awaiting_request_line = True
    _head_bytes = 0

    def connectionMade(self) -> None:
        super().connectionMade()
        self.site.connection_opened(self)

    def getHost(self) -> IAddress:
        """The local address, asked of the transport once per connection, not per request.

        Twisted's C{Request} asks for it in its constructor, and on TCP each
        ask is a C{getsockname} system call: 7% of the reactor's time for a
        small request on a keep-alive connection.  It never changes while the
        connection lasts.
        """
        if self._host is None:
            assert self.transport is not None
            self._host = self.transport.getHost()
        return self._host

    def getPeer(self) -> IAddress:
        """The client's address, asked of the transport once per connection.

        TCP's C{getPeer} builds a new address object at each call; the
        head checks want it for every request.
        """
        if self._peer is None:
            assert self.transport is not None
            self._peer = self.transport.getPeer()
        return self._peer

    def isSecure(self) -> bool:
        """Whether the transport is TLS, looked up once per connection, not per request."""
        if self._secure is None:
            if self.transport is None:
                return False
            self._secure = bool(super().isSecure())
        return self._secure

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_deadline()
        self._cancel_idle()
        if self._linger is not None:
            self._linger.stop()
        super().connectionLost(reason)
        self.site.connection_closed(self)

    def detach(self) -> None:
        """The connection leaves HTTP (a WebSocket upgrade): stop counting it here."""
        self._cancel_deadline()
        self._cancel_idle()
        self.site.connection_closed(self)

    @property
    def answered_early(self) -> bool:
        """Whether this connection has given its final answer and is lingering."""
        return self._linger is not None

    # The idle timeout

    def setTimeout(self, period: float | None) -> float | None:
        """C{TimeoutMixin}'s idle timeout, without a timer per request.

        C{HTTPChannel} stops the idle timeout while it handles a request and
        starts it again after: C{TimeoutMixin} cancels its C{DelayedCall} and
        makes a new one, for every request on a kept-alive connection.  Here
        one call stays pending: stopping only marks the timeout off, starting
        notes the time, and when the call fires it re-arms itself for what is
        left of the period since the connection was last active.
        """
        previous = self.timeOut
        # Declared int by TimeoutMixin; the site's idle timeout is any number of seconds.
        self.timeOut = period  # type: ignore[assignment]
        if period is None:
            return previous
        now = self.site.reactor.seconds()
        self._idle_from = now
        call = self._idle_call
        if call is None:
            self._idle_call = self.callLater(period, self._idle_check)
        elif call.getTime() > now + period:
            call.reset(period)
        return previous

    def resetTimeout(self) -> None:
        """Input arrived: the idle period starts again (when the timeout is on)."""
        if self.timeOut is not None:
            self._idle_from = self.site.reactor.seconds()

    def _idle_check(self) -> None:
        self._idle_call = None
        period = self.timeOut
        if period is None:
            return  # off (a request is being handled): turning it on arms it again
        left = self._idle_from + period - self.site.reactor.seconds()
        if left > 0:
            self._idle_call = self.callLater(left, self._idle_check)
        else:
            self.timeoutConnection()

    def _cancel_idle(self) -> None:
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None

    # Reading

    def dataReceived(self, data: bytes) -> None:
        if self._linger is not None:
            self._linger.discard(data)
            return
        if not self._handlingRequest:
            if self._reading_since is None:
                self._start_reading()
            if (
                self.line_mode
                and b"\n" in data
                and _bare_lf(self._buffer + data if self._buffer else data)
            ):
                self.answer_early(Refusal(400, "request lines must end with CRLF"))
                return
        _HTTPChannel.dataReceived(self, data)

    def lineReceived(self, line: bytes) -> None:
        if self._linger is not None:
            return
        self._head_bytes += len(line)
        if self._awaiting_request_line:
            if line:
                self._awaiting_request_line = False
                refusal = check_request_line(line)
                if refusal is not None:
                    self.answer_early(refusal)
                    return
        elif self._head_bytes > self.max_head_bytes:
            self.answer_early(Refusal(431, f"request headers exceed {self.max_head_bytes} bytes"))
            return
        if b"\n" in line:
            self.answer_early(Refusal(400, "request lines must end with CRLF"))
            return
        _HTTPChannel.lineReceived(self, line)

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._awaiting_request_line:
            self.answer_early(Refusal(414, f"request line longer than {self.MAX_LENGTH} bytes"))
        else:
            self.answer_early(Refusal(431, f"header line longer than {self.MAX_LENGTH} bytes"))

    def headerReceived(self, line: bytes) -> bool:
        if self._linger is not None:
            return False
        if self._receivedHeaderCount >= self.maxHeaders:
            self.answer_early(Refusal(431, f"more than {self.maxHeaders} header lines"))
            return False
        return bool(_HTTPChannel.headerReceived(self, line))

    def _maybeChooseTransferDecoder(self, header: bytes, data: bytes) -> bool:
        if header != b"Transfer-Encoding" or data.lower() != b"chunked":
            return bool(_HTTPChannel._maybeChooseTransferDecoder(self, header, data))
        if self._transferDecoder is not None:
            return bool(self._failChooseTransferDecoder())
        request = self.requests[-1]
        self.length = None
        self._transferDecoder = BoundedChunkedDecoder(
            request.handleContentChunk, self._finishRequestBody, request.chunk_announced
        )
        return True

    def allHeadersReceived(self) -> None:
        if self._linger is not None:
            return
        outcome = check_head(
            self._command,
            self._path,
            self._version,
            self.requests[-1].requestHeaders,
            hosts=self.site.hosts,
            origins=self.site.origins,
            secure=self.isSecure(),
            peer=self.getPeer(),
        )
        if isinstance(outcome, Refusal):
            self.answer_early(outcome)
            return
        self._path = outcome
        _HTTPChannel.allHeadersReceived(self)

    def _send100Continue(self) -> None:
        if self._linger is None:
            super()._send100Continue()

    def rawDataReceived(self, data: bytes) -> None:
        if self._linger is None:
            _HTTPChannel.rawDataReceived(self, data)

    def allContentReceived(self) -> None:
        if self._linger is not None:
            return
        self._reading_since = None
        self._awaiting_request_line = True
        self._head_bytes = 0
        _HTTPChannel.allContentReceived(self)

    def _respondToBadRequestAndDisconnect(self) -> None:
        self.answer_early(Refusal(400, "malformed request"))

    # Answering early

    def _start_reading(self) -> None:
        """The first byte of a request: its deadline runs from now.

        One timer per connection, not per request: it is armed when none is
        pending and, when it fires, re-armed for the request then being read
        (if any), so fast requests on a kept-alive connection cost no timer.
        """
        self._reading_since = self.site.reactor.seconds()
        if self._deadline is None:
            self._deadline = self.callLater(self.site.request_deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self._deadline = None
        started = self._reading_since
        if started is None or self._handlingRequest:
            return  # between requests: the next one arms it again
        deadline = self.site.request_deadline
        left = started + deadline - self.site.reactor.seconds()
        if left > 0:
            self._deadline = self.callLater(left, self._check_deadline)
            return
        self.answer_early(Refusal(408, f"the request was not received within {deadline:g} seconds"))

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def answer_early(self, refusal: Refusal) -> None:
        """Answer the request being read with C{refusal}, count it, and linger.

        Nothing more is parsed on this connection: what the client still
        sends is read and dropped until it stops, or for a bounded time and
        amount, then the connection is closed.
        """
        transport = cast(_Connection | None, self.transport)
        if self._linger is not None or transport is None or transport.disconnecting:
            return
        site = self.site
        self._cancel_deadline()
        self.setTimeout(None)
        method = getattr(self, "_command", b"-")
        response, sent = refusal.encode(head_only=method == b"HEAD")
        transport.write(response)
        if isinstance(self._transferDecoder, BoundedChunkedDecoder):
            self._transferDecoder.stop()
        # What LineReceiver still holds is never parsed.
        self._buffer = b""
        # Under TLS, the TCP half-close would bypass the TLS layer: only keep reading.
        half_close = (
            None if self.isSecure() else getattr(self.transport, "loseWriteConnection", None)
        )
        self._linger = LingeringClose(
            transport,
            site.reactor,
            seconds=site.linger_seconds,
            max_bytes=site.linger_bytes,
            half_close=half_close,
        )
        # Keep reading whatever happened before: the point is to drain the input.
        producer = cast(_Consumer, self._networkProducer)
        producer.unregisterProducer()
        producer.resumeProducing()
        self._linger.start()
        site.answered_early(self._record(refusal, method, sent), refusal)

    def _record(self, refusal: Refusal, method: bytes, sent: int) -> http.Request:
        """A request object describing the refused request, for the counts and the access log."""
        record = self.requests[-1] if self.requests else self.requestFactory(self, 0)
        uri = getattr(self, "_path", b"-")
        record.method = method
        record.uri = uri
        record.path = uri.split(b"?", 1)[0]
        record.clientproto = getattr(self, "_version", b"-")
        record.code = refusal.code
        record.sentLength = sent
        return record
