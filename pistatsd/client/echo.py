"""C{echo}: stdin lines sent as WebSocket messages, each reply printed."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IPushProducer,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from pistatsd.client.failures import ClientError, OutputClosed
from pistatsd.client.session import HIGH_WATER, LOW_WATER, MAX_LINE, Session, Write
from pistatsd.client.urls import BaseURL
from pistatsd.reactors import IPistatsdReactor


def _decode_line(raw: bytes) -> str:
    return raw.rstrip(b"\r").decode("utf-8", "replace")


@implementer(IHalfCloseableProtocol)
class _Terminal(Protocol):
    """stdin lines in, replies out, through one non-blocking C{StandardIO}.

    Half-closeable so that the end of stdin does not also close stdout while
    replies are still on their way.
    """

    def __init__(self, session: EchoSession) -> None:
        self._session = session
        self._buffer = b""
        self._closing = False
        self._lost = False
        self._output_gone = False
        self._waiters: list[Deferred[None]] = []

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            self._session.line(_decode_line(raw))
        if len(self._buffer) > MAX_LINE:
            self._session.fail(ClientError(f"an input line is longer than {MAX_LINE} bytes"))

    def readConnectionLost(self) -> None:
        if self._buffer:
            raw, self._buffer = self._buffer, b""
            self._session.line(_decode_line(raw))
        self._session.end_of_input()

    def writeConnectionLost(self) -> None:
        self._output_gone = True
        self._session.fail(OutputClosed())

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def write_line(self, text: str) -> None:
        """Print one reply (queued without blocking; C{close()} waits for it to be written)."""
        if self.transport is not None and not self._lost and not self._output_gone:
            self.transport.write(text.encode("utf-8", "replace") + b"\n")

    def _stdin(self) -> IPushProducer:
        """The transport (C{StandardIO}) is also the producer of stdin's data."""
        return cast(IPushProducer, self.transport)

    def pause(self) -> None:
        """Stop reading stdin for now."""
        if self.transport is not None and not self._lost:
            self._stdin().pauseProducing()

    def resume(self) -> None:
        """Read stdin again."""
        if self.transport is not None and not self._lost:
            self._stdin().resumeProducing()

    def close(self) -> Deferred[None]:
        """Stop reading and flush stdout; fires once everything is written."""
        if self.transport is None or self._lost:
            return succeed(None)
        if self._output_gone:  # nothing left to flush, and StandardIO will not report more
            self._stdin().pauseProducing()
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        if not self._closing:
            self._closing = True
            self.transport.loseConnection()
        return waiter


class EchoSession(Session):
    """C{echo}: every stdin line is sent as a text message and each reply printed.

    Ends with 0 once stdin is exhausted and every reply has arrived, after a
    clean close (1000). stdin is read only once the WebSocket is open, and
    paused while too many replies are outstanding.
    """

    def __init__(
        self,
        reactor: IPistatsdReactor,
        base: BaseURL,
        path: str,
        endpoint: IStreamClientEndpoint,
        timeout: float,
        warn: Write,
        *,
        stdio: Callable[[Protocol], object],
    ) -> None:
        super().__init__(reactor, base, path, endpoint, timeout, warn)
        self._stdio = stdio
        self._terminal = _Terminal(self)
        self._pending = 0
        self._paused = False
        self._input_done = False

    def on_open(self) -> None:
        self._stdio(self._terminal)

    def line(self, text: str) -> None:
        """Send one stdin line."""
        if self._settled or self._closing or self.protocol is None:
            return
        self._pending += 1
        self.protocol.sendMessage(text.encode("utf-8"), isBinary=False)
        if self._pending == 1:
            self.arm(self.timeout, "an echo reply")
        if self._pending >= HIGH_WATER and not self._paused:
            self._paused = True
            self._terminal.pause()

    def received(self, payload: bytes, is_binary: bool) -> None:
        if self._settled:
            return
        self._terminal.write_line(payload.decode("utf-8", "replace"))
        self._pending = max(0, self._pending - 1)
        if self._pending:
            self.arm(self.timeout, "an echo reply")
        else:
            self.disarm()
        if self._paused and self._pending <= LOW_WATER:
            self._paused = False
            self._terminal.resume()
        self._close_when_done()

    def end_of_input(self) -> None:
        """stdin is exhausted: close once the last reply is in."""
        self._input_done = True
        self._close_when_done()

    def _close_when_done(self) -> None:
        if self._input_done and self._pending == 0:
            self.close()

    def flush(self) -> Deferred[None]:
        return self._terminal.close()
