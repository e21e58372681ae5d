"""Stream part of an open file to a request: a push producer, so a slow client costs no memory."""

from __future__ import annotations

import os

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

__all__ = ["FileProducer"]

_log = Logger()


@implementer(IPushProducer)
class FileProducer:
    """
    Stream C{length} bytes of an open file from C{offset} to a request.

    A push producer rather than a pull one: C{HTTPChannel} would wrap a pull
    producer in a cooperator that yields to the reactor between chunks (slow,
    and untestable without a reactor), while a push producer writes chunk
    after chunk until the transport, whose buffer is full, pauses it; it is
    resumed when that buffer has drained.  So at most about one chunk is
    buffered per slow client.

    The descriptor is closed on completion, on C{stopProducing} and when the
    request's C{notifyFinish} fails (client gone).
    """

    def __init__(self, request: Request, fd: int, offset: int, length: int, chunkSize: int) -> None:
        self._request = request
        self._fd = fd
        self._offset = offset
        self._remaining = length
        self._chunkSize = chunkSize
        self._paused = False
        self._producing = False

    @property
    def closed(self) -> bool:
        """
        Whether the file descriptor has been released.
        """
        return self._fd < 0

    def start(self) -> None:
        """
        Register on the request and write until paused or done.
        """
        try:
            self._request.registerProducer(self, True)
        except BaseException:
            self._close()
            raise
        self._request.notifyFinish().addErrback(self._connectionLost)
        self._produce()

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full: stop writing until resumed.
        """
        self._paused = True

    def resumeProducing(self) -> None:
        """
        The transport's buffer drained: write more.
        """
        self._paused = False
        self._produce()

    def stopProducing(self) -> None:
        """
        The connection is going away: release the file, write nothing more.
        """
        self._close()

    def _produce(self) -> None:
        """
        Write chunks until paused, finished or closed.

        Guarded against re-entry: a consumer may call C{resumeProducing}
        from inside our own C{write}.
        """
        if self._producing:
            return
        self._producing = True
        try:
            request = self._request
            while not self._paused and self._fd >= 0:
                data = os.pread(self._fd, min(self._chunkSize, self._remaining), self._offset)
                if not data:
                    # The file shrank under us; the promised Content-Length
                    # can no longer be honoured, so tell the client by closing.
                    _log.warn("static file truncated while being sent")
                    self._abort()
                    return
                self._offset += len(data)
                self._remaining -= len(data)
                request.write(data)
                if self._remaining <= 0:
                    self._close()
                    if request.channel is not None:
                        request.unregisterProducer()
                        request.finish()
                    return
        except Exception:
            _log.failure("streaming a static file failed")
            self._abort()
        finally:
            self._producing = False

    def _abort(self) -> None:
        """
        Give up on this response: release the file and drop the connection.
        """
        self._close()
        request = self._request
        if request.channel is not None:
            request.unregisterProducer()
            request.loseConnection()

    def _connectionLost(self, reason: Failure) -> None:
        """
        The client went away (C{notifyFinish} errback): release the file.
        """
        self._close()

    def _close(self) -> None:
        """
        Close the descriptor once.
        """
        fd = self._fd
        if fd >= 0:
            self._fd = -1
            os.close(fd)
