"""The request body limit: refused as it streams in, never buffered whole.

Twisted's C{Request} buffers any body.  L{LimitedRequest} refuses a declared
C{Content-Length} over C{--max-body} before a byte of the body is read, and a
chunked body as soon as a chunk's size line says it would cross the limit
(L{BoundedChunkedDecoder}), so a client announcing a huge chunk is not
waited for.  The refusal is a 413 answered by the channel, which then
lingers (L{pistatsd.web.linger}) so the client gets to read it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.http import _ChunkedTransferDecoder, _MalformedChunkedDataError
from twisted.web.server import Request

from pistatsd.web.early import Refusal

if TYPE_CHECKING:
    from pistatsd.web.channel import GuardedChannel

_log = Logger()

_INTERNAL_ERROR = b'{"error":"internal server error"}'
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


class _DiscardBody:
    """Stands in for the body file of a refused request, so nothing is buffered."""

    def write(self, data: bytes) -> None:
        pass

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass


class BoundedChunkedDecoder(_ChunkedTransferDecoder):
    """Twisted's chunked decoder, judging each chunk-size line while it arrives.

    Anything but hex digits before the C{;} or the end of line is malformed
    at once (400), and a size that would take the body over the limit is
    refused at once (413), even before its line is complete: a 25-digit size
    is not waited for.

    @param announced: called with the size read so far; returns False to
        refuse the body, after which the decoder ignores all input.
    """

    def __init__(
        self,
        dataCallback: Callable[[bytes], None],
        finishCallback: Callable[[bytes], None],
        announced: Callable[[int], bool],
    ) -> None:
        super().__init__(dataCallback, finishCallback)
        self._announced = announced
        self._stopped = False

    def stop(self) -> None:
        """Ignore everything from now on (the request has been answered)."""
        self._stopped = True
        del self._buffer[:]

    def dataReceived(self, data: bytes) -> None:
        if not self._stopped:
            super().dataReceived(data)

    def _dataReceived_CHUNK_LENGTH(self) -> bool:
        buffer = self._buffer
        end = 0
        # Past 16 digits a size is beyond any limit (leading zeros or not): stop counting.
        while end < len(buffer) and end <= 16 and buffer[end] in _HEX_DIGITS:
            end += 1
        if end > 16:
            self._announced(1 << 64)
            self.stop()
            return False
        if end < len(buffer) and (end == 0 or buffer[end] not in b";\r"):
            raise _MalformedChunkedDataError("chunk-size must be hexadecimal digits")
        after = bytes(buffer[end : end + 2])
        if after[:1] == b"\r" and after not in (b"\r", b"\r\n"):
            raise _MalformedChunkedDataError("chunk-size line with a bare CR")
        if end and not self._announced(int(buffer[:end], 16)):
            self.stop()
            return False
        return bool(super()._dataReceived_CHUNK_LENGTH())


class LimitedRequest(Request):
    """A request that refuses bodies over the site's C{max_body} as they arrive."""

    channel: GuardedChannel
    _body_seen = 0
    _refused = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.channel.site.max_body:
            self._refuse_body()
            return
        super().gotLength(length)

    def chunk_announced(self, size: int) -> bool:
        """A chunk of C{size} bytes is coming: refuse now if it would cross the limit."""
        if self._refused:
            return False
        if self._body_seen + size > self.channel.site.max_body:
            self._refuse_body()
            return False
        return True

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._body_seen += len(data)
        if self._body_seen > self.channel.site.max_body:
            self._refuse_body()
            return
        assert self.content is not None  # gotLength made it
        self.content.write(data)

    def _refuse_body(self) -> None:
        site = self.channel.site
        self._refused = True
        self.content = _DiscardBody()
        site.traffic.bodies_refused += 1
        self.channel.answer_early(Refusal(413, f"request body exceeds {site.max_body} bytes"))

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
