"""The last changes of every alert: in memory, and in the history database when there is one.

L{ChangeLog.add} is a change listener: it keeps the newest L{LIMIT} changes
in memory (for C{/api/alerts/history}) and, with a store, writes them in
batches: one write at a time, the changes that arrive meanwhile go
together in the next.  A write that fails is logged once per episode;
the changes stay in memory.  At start the stored changes are loaded
back behind the ones already seen (L{AlertsService}).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from pistatsd.alerts.events import AlertChange
from pistatsd.episodes import Episode

_log = Logger()

#: Changes kept (memory and database).
LIMIT = 1000


class ChangeStore(Protocol):
    """Where changes persist (L{pistatsd.history.alertlog.AlertLogTable})."""

    def save(self, changes: Sequence[AlertChange]) -> Deferred[None]: ...

    def load(self) -> Deferred[tuple[list[AlertChange], int]]: ...


class ChangeLog:
    """The newest changes, newest last; bounded in memory and in what waits to be written."""

    def __init__(self, store: ChangeStore | None = None, limit: int = LIMIT) -> None:
        self._changes: deque[AlertChange] = deque(maxlen=limit)
        self._limit = limit
        self._store = store
        self._unsaved: deque[AlertChange] = deque(maxlen=limit)
        self._writing: Deferred[None] | None = None
        #: Writes that failed, changes never written because too many waited, and bad
        #: rows skipped when loading (for C{/health}).
        self.write_failures = 0
        self.unsaved_dropped = 0
        self.skipped_rows = 0
        self._backlogged = Episode(
            _log,
            "alerts: {limit} changes wait to be written to the history database; the oldest "
            "are kept in memory only",
            "alerts: the change log is written again after {n} changes were not",
            count_field="n",
        )
        self._failing = Episode(
            _log,
            "alerts: cannot write the change log to the history database ({error}); "
            "keeping changes in memory only",
            "alerts: writing the change log works again after {n} failures",
            count_field="n",
        )

    @property
    def persistent(self) -> bool:
        """Whether changes are written to the history database."""
        return self._store is not None

    def __len__(self) -> int:
        return len(self._changes)

    def add(self, change: AlertChange) -> None:
        """A change listener: keep C{change}, and write it soon."""
        self._changes.append(change)
        if self._store is not None:
            if len(self._unsaved) == self._unsaved.maxlen:
                self.unsaved_dropped += 1
                self._backlogged.happened(limit=self._limit)
            self._unsaved.append(change)
            self._write()

    def recent(self, limit: int) -> list[AlertChange]:
        """The newest C{limit} changes, newest first."""
        newest: list[AlertChange] = []
        for change in reversed(self._changes):
            if len(newest) >= limit:
                break
            newest.append(change)
        return newest

    def oldest_first(self) -> list[AlertChange]:
        """Every kept change, oldest first."""
        return list(self._changes)

    def _write(self) -> None:
        if self._writing is not None or not self._unsaved or self._store is None:
            return
        batch = list(self._unsaved)
        self._unsaved.clear()
        d = self._writing = self._store.save(batch)
        d.addCallbacks(self._written, self._write_failed)
        d.addBoth(self._write_done)

    def _written(self, _: object) -> None:
        self._failing.ended()
        if not self._unsaved:
            self._backlogged.ended()

    def _write_failed(self, failure: Failure) -> None:
        self.write_failures += 1
        self._failing.happened(error=failure.getErrorMessage())

    def _write_done(self, _: object) -> None:
        self._writing = None
        self._write()

    def idle(self) -> Deferred[None]:
        """Fires once nothing is being written or waits to be: for a clean stop."""
        writing = self._writing
        if writing is None:
            return succeed(None)
        done: Deferred[None] = Deferred()

        def finished(result: object) -> object:
            # The next batch (if any) has started by now: wait for it too.
            self.idle().chainDeferred(done)
            return result

        writing.addBoth(finished)
        return done

    def load(self) -> Deferred[None]:
        """Put the stored changes behind the ones already seen; never fails."""
        if self._store is None:
            return succeed(None)
        loaded: Deferred[None] = self._store.load().addCallbacks(self._loaded, self._load_failed)
        return loaded

    def _loaded(self, result: tuple[list[AlertChange], int]) -> None:
        stored, skipped = result
        self.skipped_rows += skipped
        if skipped:
            _log.warn("alerts: skipped {n} unreadable rows of the stored change log", n=skipped)
        newer = list(self._changes)
        room = max(0, self._limit - len(newer))
        self._changes.clear()
        self._changes.extend(stored[-room:] if room else [])
        self._changes.extend(newer)
        _log.info("alerts: {n} changes loaded from the history database", n=len(stored))

    def _load_failed(self, failure: Failure) -> None:
        _log.warn(
            "alerts: cannot load the change log ({error}); starting with none",
            error=failure.getErrorMessage(),
        )


class Restorable(Protocol):
    """What takes back the stored changes (L{pistatsd.alerts.engine.AlertEngine})."""

    def restore(self, changes: Sequence[AlertChange]) -> None: ...


class AlertsService(Service):
    """Loads the change log when the daemon starts (and gives it to the engine, so what
    fired before a restart goes on firing), and lets its last write finish at stop.

    Start it after the history (so its database is opening) and before the
    sampler (so nothing is evaluated before the history runs).
    """

    name = "alerts"

    def __init__(self, log: ChangeLog, engine: Restorable | None = None) -> None:
        self._log = log
        self._engine = engine

    def startService(self) -> None:
        super().startService()
        loaded = self._log.load()
        engine = self._engine
        if engine is not None:
            loaded.addCallback(lambda _: engine.restore(self._log.oldest_first()))
            loaded.addErrback(lambda f: _log.failure("alerts: restoring the states failed", f))

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self._log.idle()
