"""Lingering close: let a client read an early error instead of a connection reset.

A client that sends its headers and a too-large body in one go is still
sending when the 413 goes out.  Closing the socket then, with its input
unread, makes the kernel answer with a reset, and a reset throws away
whatever the client had not read yet, the 413 included.  So, as nginx does
(C{lingering_close}), the server stops writing (a half-close, C{shutdown(SHUT_WR)},
where the transport has one: the client sees the end of the response), keeps
reading and discarding what still comes, and closes once the client is done,
or after a bounded time or amount: a client cannot keep the connection
alive by sending forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class Abortable(Protocol):
    """What lingering needs of a transport: a way to end it for sure."""

    def abortConnection(self) -> None: ...


class LingeringClose:
    """Discards a connection's input for at most C{seconds} and C{max_bytes}, then aborts it.

    @param half_close: the transport's C{loseWriteConnection}, or None when
        it has none that is safe (TLS: the close would skip the TLS layer).
    """

    def __init__(
        self,
        transport: Abortable,
        clock: IReactorTime,
        *,
        seconds: float,
        max_bytes: int,
        half_close: Callable[[], None] | None,
    ) -> None:
        self._transport = transport
        self._clock = clock
        self._seconds = seconds
        self._max_bytes = max_bytes
        self._half_close = half_close
        self._call: IDelayedCall | None = None
        self.discarded = 0
        self.closed = False

    def start(self) -> None:
        """The response is written: stop writing and start the clock."""
        if self._half_close is not None:
            self._half_close()
        self._call = self._clock.callLater(self._seconds, self._close)

    def discard(self, data: bytes) -> None:
        """Drop input; close once there has been too much of it."""
        self.discarded += len(data)
        if self.discarded > self._max_bytes and not self.closed:
            self._close()

    def stop(self) -> None:
        """The connection is gone: nothing more to wait for."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _close(self) -> None:
        self.stop()
        self.closed = True
        self._transport.abortConnection()
