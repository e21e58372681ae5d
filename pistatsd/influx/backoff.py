"""How long to wait before trying InfluxDB again: exponential, capped, with jitter.

Jitter keeps a fleet of Raspberry Pis that lost the same server from coming
back in lockstep; the cap keeps a long outage from silencing reporting for
long after it ends; a server's C{Retry-After} is honoured when it asks for
more.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """Consecutive failures and the delay each one earns.

    The n-th failure in a row waits C{initial * 2**(n-1)} seconds, at most
    C{maximum}, of which a random 50..100% is kept.

    @param random: source of jitter in [0, 1), injected so tests are exact.
    """

    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 300.0,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._initial = initial
        self._maximum = maximum
        self._random = random
        #: Failures in a row so far.
        self.failures = 0

    def failed(self) -> None:
        """One more failure in a row."""
        self.failures += 1

    def delay(self, retry_after: float | None = None) -> float:
        """Seconds to wait before the next try, after L{failures} failures in a row
        (at least C{retry_after}, the server's own request)."""
        base = min(self._maximum, self._initial * 2 ** min(max(self.failures, 1) - 1, 30))
        delay = base * (0.5 + 0.5 * self._random())
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def reset(self) -> None:
        """A success: the next failure starts from the initial delay again."""
        self.failures = 0
