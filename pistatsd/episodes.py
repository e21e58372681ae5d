"""Log once per episode: the first line when a problem starts, one line with the count when it ends.

A daemon that runs for months meets the same problem again and again (a
full queue, a sensor that cannot be read, systemd gone); a log line per
event would fill the journal and hide everything else.  An L{Episode}
logs the first occurrence, counts the rest, and logs one closing line,
with how many there were, once the condition has ended.
"""

from __future__ import annotations

from functools import partial

from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure


class Episode:
    """One condition that starts, may repeat, and ends.

    @param log: the logger of the module the condition belongs to (so the
        lines carry its namespace).
    @param start_format: logged (PEP 3101 format) on the first
        L{happened} of an episode, with the fields given to it.
    @param end_format: logged on L{ended}, with the fields given to it and
        C{count}: how many times it happened in the episode.
    @param level: the level of the first line; the closing line is info.
    @param count_field: the name the closing line gives the count.
    @ivar count: occurrences in the current episode (0 when none is going on).
    """

    def __init__(
        self,
        log: Logger,
        start_format: str,
        end_format: str,
        level: LogLevel = LogLevel.warn,
        count_field: str = "count",
    ) -> None:
        self._log = log
        self._start = start_format
        self._end = end_format
        self._level = level
        self._count_field = count_field
        self.count = 0

    @property
    def active(self) -> bool:
        """Whether the condition is going on (it happened and has not ended)."""
        return self.count > 0

    def happened(self, failure: Failure | None = None, /, **fields: object) -> bool:
        """Count one occurrence; log it if it opens the episode.  True if it did.

        @param failure: logged with its traceback (C{Logger.failure}) when
            the occurrence is a bug rather than a known condition.
        @param fields: the log event's fields (the start format's names).
        """
        self.count += 1
        if self.count > 1:
            return False
        if failure is not None:
            self._log.failure(self._start, failure, self._level, **fields)
        else:
            self._log.emit(self._level, self._start, **fields)
        return True

    def happened_times(self, n: int, **fields: object) -> bool:
        """Count C{n} occurrences at once (a batch); log if they open the episode."""
        if n <= 0:
            return False
        opened = self.happened(**fields)
        self.count += n - 1
        return opened

    def ended(self, **fields: object) -> bool:
        """The condition is over: log the closing line with the count.  True if one was going on."""
        if not self.count:
            return False
        count, self.count = self.count, 0
        self._log.info(self._end, **{self._count_field: count}, **fields)
        return True

    def forget(self) -> None:
        """End the episode without a closing line (what it was about is gone)."""
        self.count = 0


class Episodes:
    """One L{Episode} per key (a part, a sensor), all with the same lines."""

    def __init__(
        self,
        log: Logger,
        start_format: str,
        end_format: str,
        level: LogLevel = LogLevel.warn,
    ) -> None:
        self._new = partial(Episode, log, start_format, end_format, level)
        self._episodes: dict[str, Episode] = {}

    def happened(self, key: str, /, failure: Failure | None = None, **fields: object) -> bool:
        """Count one occurrence for C{key}; log it if it opens C{key}'s episode."""
        episode = self._episodes.get(key)
        if episode is None:
            episode = self._episodes[key] = self._new()
        return episode.happened(failure, **fields)

    def ended(self, key: str, /, **fields: object) -> bool:
        """C{key}'s condition is over: log the closing line if an episode was going on."""
        episode = self._episodes.pop(key, None)
        return episode is not None and episode.ended(**fields)

    def forget(self, key: str) -> None:
        """Drop C{key}'s episode without a line (the sensor was replaced or deleted)."""
        self._episodes.pop(key, None)

    def active(self, key: str) -> bool:
        """Whether C{key}'s condition is going on."""
        episode = self._episodes.get(key)
        return episode is not None and episode.active
