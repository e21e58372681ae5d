"""The access log's date, from the wall clock.

Twisted's C{HTTPFactory} dates access-log lines with C{reactor.seconds()}.
The daemon's reactor keeps time on a monotonic clock (L{pistatsd.clock}),
which knows no date: the lines would say 1970.  L{WallClockLogFormatter}
ignores the time it is handed and writes the wall clock's instead,
formatted at most once a second, as Twisted's own cache does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.web.http import combinedLogFormatter, datetimeToLogString
from twisted.web.iweb import IAccessLogFormatter, IRequest
from zope.interface import implementer


@implementer(IAccessLogFormatter)
class WallClockLogFormatter:
    """Combined Log Format lines, dated by C{wall} (C{time.time} by default)."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        formatter: IAccessLogFormatter = combinedLogFormatter,
    ) -> None:
        self._wall = wall
        self._formatter = formatter
        self._second: int | None = None
        self._date = ""

    def __call__(self, timestamp: str, request: IRequest) -> str:
        """The line for C{request}; C{timestamp} (the reactor's idea of the date) is ignored."""
        second = int(self._wall())
        if second != self._second:
            self._second = second
            self._date = datetimeToLogString(second)
        return self._formatter(self._date, request)
