"""Periodic work that never dies of one failure.

A L{LoopingCall} stops for good the first time its function raises, and a
L{TimerService} with it; a loop that samples, reports or pings for months
must not.  L{guarded} wraps the work so a failing iteration is logged with
its traceback and the next one runs on time.  Services that run for the
daemon's life are L{twisted.application.internet.TimerService}s over guarded
work; L{Repeating} is the loop for the rest: one that starts late
(C{now=False}) or starts and stops with its clients.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

_log = Logger()


def guarded(work: Callable[[], object], what: str) -> Callable[[], None]:
    """C{work}, with any exception logged (C{log.failure}) instead of raised.

    @param what: names the work in the log line (C{"broadcast tick"}).
    """

    def iteration() -> None:
        try:
            work()
        except Exception:
            _log.failure("{what} failed; trying again next time", what=what)

    return iteration


class Repeating(LoopingCall):
    """A L{LoopingCall} on an injected clock whose failing iterations are logged, not fatal."""

    def __init__(self, clock: IReactorTime, work: Callable[[], object], what: str) -> None:
        super().__init__(guarded(work, what))
        self.clock = clock
        self._what = what

    def start(self, interval: float, now: bool = True) -> Deferred[LoopingCall]:
        """Start calling every C{interval} seconds (the first now, or after one interval)."""
        finished: Deferred[LoopingCall] = super().start(interval, now)
        finished.addErrback(self._died)
        return finished

    def _died(self, failure: Failure) -> None:
        """Cannot happen (every iteration is guarded), but never fail silently."""
        _log.failure("The {what} loop stopped", failure=failure, what=self._what)
