"""Turns of the reactor shared by every slice of long answers, one slice per turn.

Long answers (a 30-day series query) are cut into slices of a millisecond
or two, and each slice waits for a turn before it runs.  A plain
C{deferLater(clock, 0, ...)} per slice is not enough: the slices of every
query in progress then fall due together and run back to back in one
reactor iteration, four queries making one stall of four slices.  Here they
queue, and each iteration of the reactor runs one of them, so a request
that arrives meanwhile (C{/alive}, a WebSocket tick) waits for one slice at
most, whatever the number of queries.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime


class Turns:
    """A queue of slices waiting for the reactor, released one per iteration."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._waiting: deque[Deferred[None]] = deque()
        self._call: IDelayedCall | None = None

    def __len__(self) -> int:
        """Slices waiting (bounded by the requests in progress)."""
        return len(self._waiting)

    def next(self) -> Deferred[None]:
        """Fires when it is this slice's turn (never synchronously)."""
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        if self._call is None:
            self._call = self._clock.callLater(0, self._release)
        return d

    def _release(self) -> None:
        # The next turn is scheduled before this slice runs: a call added
        # while the reactor runs its due calls waits for the next iteration,
        # after the reactor has looked at its connections.
        self._call = None
        d = self._waiting.popleft()
        if self._waiting:
            self._call = self._clock.callLater(0, self._release)
        d.callback(None)
