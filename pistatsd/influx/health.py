"""How InfluxDB is doing, as the reporter sees it: for C{/health}, and for the log.

A failed attempt is remembered twice: as C{last_error}, the current
problem, which a successful write clears; and as C{last_failure} with
C{last_failure_time}, which stay after recovery so that whoever looks at
C{/health} after an outage can still see what went wrong and when.

Problems are logged once per episode: one line when a problem starts (or
changes kind), one when InfluxDB accepts writes again, never one per attempt.
"""

from __future__ import annotations

from attrs import define, field
from twisted.logger import Logger

__all__ = ["Health", "HealthValue"]

_log = Logger()

HealthValue = str | int | float | bool | None
"""A value of the C{/health} object: plain JSON."""


@define
class Health:
    """The outcome of the reporter's attempts so far; see the module docstring.

    @ivar url: the InfluxDB URL (without credentials), for log lines.
    @ivar last_success: when a write last succeeded (epoch seconds), or None.
    @ivar last_error: the current problem, or None while writes succeed.
    @ivar last_failure: the most recent failure's message, kept after recovery.
    @ivar last_failure_time: when it happened (epoch seconds), or None.
    """

    url: str
    last_success: float | None = None
    last_error: str | None = None
    last_failure: str | None = None
    last_failure_time: float | None = None
    _problem: str | None = field(default=None, init=False)
    _attempts: int = field(default=0, init=False)
    _rejected: int = field(default=0, init=False)

    @property
    def problem(self) -> str | None:
        """The kind of the current problem episode (C{"retry:500"}...), or None."""
        return self._problem

    def view(
        self, *, api: str, queued: int, spooled: int, dropped: int, retrying: bool
    ) -> dict[str, HealthValue]:
        """The reporter's object in C{/health}; never a credential.

        - C{enabled}: always true (there is no object without C{--influx});
        - C{url}, C{api}: where it writes (C{"v1"} or C{"v2"});
        - C{last_success}: when a write last succeeded (epoch seconds), or null;
        - C{last_error}: the current problem, or null once a write succeeds;
        - C{last_failure}, C{last_failure_time}: the most recent failure and
          when it happened; they stay after recovery;
        - C{queued}, C{spooled}: points waiting in memory and in the spool;
        - C{dropped}: points lost for any reason (C{/metrics} has the breakdown);
        - C{retrying}: whether the last attempt failed and a retry is due.
        """
        return {
            "enabled": True,
            "url": self.url,
            "api": api,
            "last_success": self.last_success,
            "last_error": self.last_error,
            "last_failure": self.last_failure,
            "last_failure_time": self.last_failure_time,
            "queued": queued,
            "spooled": spooled,
            "dropped": dropped,
            "retrying": retrying,
        }

    def failed(self, message: str, now: float) -> None:
        """An attempt failed (to be retried, or dropped for good) with C{message}."""
        self.last_error = self.last_failure = message
        self.last_failure_time = now

    def succeeded(self, now: float) -> None:
        """A write succeeded: the current problem, if any, is over."""
        self.last_success = now
        self.last_error = None
        self.recovered()

    def rejected(self, count: int) -> None:
        """C{count} points were refused for good in the current episode."""
        self._rejected += count

    def trouble(self, key: str, message: str, action: str) -> None:
        """Log a problem when it starts (or changes kind), not on every attempt."""
        self._attempts += 1
        if key == self._problem:
            return
        self._problem = key
        _log.warn(
            "InfluxDB at {url}: {error}; {action}",
            url=self.url,
            error=message or "failed",
            action=action,
        )

    def recovered(self) -> None:
        """InfluxDB answers as it should again: end the episode with one line."""
        if self._problem is None:
            return
        _log.info(
            "InfluxDB at {url} accepts writes again (after {attempts} failed attempts, "
            "{dropped} points rejected)",
            url=self.url,
            attempts=self._attempts,
            dropped=self._rejected,
        )
        self._problem = None
        self._attempts = 0
        self._rejected = 0
