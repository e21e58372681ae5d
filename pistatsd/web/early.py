"""Answers given before a request reaches the resource tree, and their log.

Limits (body size, line lengths, the read deadline) and checks (C{Host},
cross-site changes, parse errors) answer from the connection itself, often
before the body was read.  Each such answer is a complete JSON error with
C{Connection: close}; the connection then lingers (L{pistatsd.web.linger}).

A client that sends one bad request after another must not fill the log:
L{RefusalLog} writes one line when refusals start and one summary when they
have stopped for a while.
"""

from __future__ import annotations

import json
from collections import Counter

from attrs import frozen
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

_log = Logger()

REASONS = {
    400: b"Bad Request",
    403: b"Forbidden",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    417: b"Expectation Failed",
    421: b"Misdirected Request",
    431: b"Request Header Fields Too Large",
    505: b"HTTP Version Not Supported",
}


@frozen
class Refusal:
    """A request answered with an error by the connection, not by a resource."""

    code: int
    message: str

    def encode(self, head_only: bool = False) -> tuple[bytes, int]:
        """The whole response and the length of its body (none is sent for C{HEAD})."""
        body = json.dumps({"error": self.message}).encode("utf-8")
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
            self.code,
            REASONS.get(self.code, b"Error"),
            len(body),
        )
        head += b"Connection: close\r\n\r\n"
        return (head, 0) if head_only else (head + body, len(body))


class RefusalLog:
    """Logs the first refusal of an episode; the rest are counted and summed up at its end.

    An episode ends after C{quiet} seconds without a refusal.
    """

    def __init__(self, clock: IReactorTime, quiet: float = 60.0) -> None:
        self._clock = clock
        self._quiet = quiet
        self._counts: Counter[int] = Counter()
        self._last = 0.0
        self._call: IDelayedCall | None = None

    def note(self, refusal: Refusal, peer: str) -> None:
        """Count one refusal; log it if it opens an episode."""
        self._last = self._clock.seconds()
        if self._call is None:
            _log.info(
                "Refused a request from {peer}: {code} {message} "
                "(further refusals are summed up once they stop)",
                peer=peer,
                code=refusal.code,
                message=refusal.message,
            )
            self._call = self._clock.callLater(self._quiet, self._check)
        else:
            self._counts[refusal.code] += 1

    def _check(self) -> None:
        idle = self._clock.seconds() - self._last
        if idle < self._quiet:
            self._call = self._clock.callLater(self._quiet - idle, self._check)
            return
        self._call = None
        if self._counts:
            _log.info(
                "Refused {count} more requests ({by_status}); none in the last {quiet} s",
                count=sum(self._counts.values()),
                quiet=self._quiet,
                by_status=", ".join(f"{n}x {code}" for code, n in sorted(self._counts.items())),
            )
        self._counts.clear()

    def stop(self) -> None:
        """Cancel the pending summary (the site is stopping)."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
