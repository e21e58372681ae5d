"""The history as a service: fed with snapshots, flushed on a timer, read by the web layer.

Recording is cheap and runs on the reactor (flatten, then a dict update per
series and resolution, see L{Buckets}).  Every C{flush_interval} seconds,
and at shutdown, everything accumulated goes to the database thread in one
transaction.  A failing write (a full disk, an I/O error) keeps the rows in
memory (bounded) and is logged once until a write works again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from pistatsd.history import schema
from pistatsd.history.api import HistoryBusy, Resolution, SeriesData
from pistatsd.history.buckets import Buckets, Key, Part
from pistatsd.history.series import flatten
from pistatsd.history.store import FlushResult, HistoryStore, Opened, open_store
from pistatsd.history.threads import Worker

if TYPE_CHECKING:
    # Types only: every sqlite3 call runs on the history's database thread
    # (L{pistatsd.history.threads.DatabaseThread}), never on the reactor.
    import sqlite3

_log = Logger()
T = TypeVar("T")


#: Bucket parts held in memory while writes fail (about 3 hours of 40 series).
DEFAULT_MAX_PENDING = 50_000
#: Queries waiting for (or running on) the database thread at once; more are
#: refused (a 503) rather than queued: each one answered costs the reactor a
#: few milliseconds of merging and encoding, and a flush waits behind them all.
DEFAULT_MAX_QUERIES = 8


def _timed_write(
    store: HistoryStore, parts: Mapping[Key, Part], latest: float | None
) -> tuple[FlushResult, float, float]:
    """Runs on the database thread: the write, its wall duration and its CPU time."""
    wall, cpu = time.perf_counter(), time.thread_time()
    result = store.write(parts, latest)
    return result, time.perf_counter() - wall, time.thread_time() - cpu


def deferred_steps(resolutions: Sequence[Resolution]) -> dict[int, int]:
    """Coarse steps written only when a bucket closes, to the step they are rebuilt
    from: those above the second resolution, which is written at every flush."""
    if len(resolutions) < 3:
        return {}
    source = resolutions[1]
    return {
        r.step: source.step
        for r in resolutions[2:]
        if r.step % source.step == 0 and source.keep >= r.step
    }


class HistoryService(Service):
    """The durable history (SPEC §12); implements L{pistatsd.history.api.HistoryReader}."""

    def __init__(
        self,
        path: str,
        *,
        clock: IReactorTime,
        worker: Worker,
        flush_interval: float = 60.0,
        max_bytes: int = 64 << 20,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_queries: int = DEFAULT_MAX_QUERIES,
        resolutions: tuple[Resolution, ...] = schema.RESOLUTIONS,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.resolutions: Sequence[Resolution] = resolutions
        self._clock = clock
        self._worker = worker
        self._flush_interval = flush_interval
        self._max_bytes = max_bytes
        self._wall = wall
        self._deferred = deferred_steps(resolutions)
        self._buckets = Buckets(resolutions, max_pending, self._deferred)
        self._inflight: Mapping[Key, Part] = {}
        self._store: HistoryStore | None = None
        self._opening: Deferred[None] | None = None
        self._flushing: Deferred[None] | None = None
        self._loop: LoopingCall | None = None
        self._names: set[str] = set()
        self._oldest_by_step: dict[int, int | None] = {}
        self._oldest: float | None = None
        self._size = 0
        self._last_flush: float | None = None
        self._last_duration: float | None = None
        self._last_cpu: float | None = None
        self._failures = 0
        self._failing = False
        self._dropping = False
        self._last_error: str | None = None
        self._unusable = False
        self._max_queries = max_queries
        self._queries = 0
        self._refused = 0
        self._refusing = False

    # -- lifecycle ---------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._worker.start()
        opening = self._worker.run(
            open_store, self.path, self._max_bytes, self.resolutions, self._deferred
        )
        self._opening = opening.addCallbacks(self._opened, self._open_failed)
        self._loop = LoopingCall(self.flush)
        self._loop.clock = self._clock
        self._loop.start(self._flush_interval, now=False)

    def _opened(self, opened: Opened) -> None:
        self._store = opened.store
        if opened.moved_aside is not None:
            _log.error(
                "history: {path} could not be used ({reason}); moved aside to {moved}, "
                "starting a new one",
                path=self.path,
                reason=opened.reason,
                moved=opened.moved_aside,
            )
        self._names.update(opened.store.names())
        self._oldest_by_step = opened.store.oldest_by_step()
        self._oldest = opened.store.oldest()
        self._size = opened.store.size_bytes()

    def _open_failed(self, failure: Failure) -> None:
        self._unusable = True
        self._last_error = str(failure.value)
        _log.error(
            "history: cannot open or create {path} ({error}); running without it",
            path=self.path,
            error=self._last_error,
        )

    def stopService(self) -> Deferred[None]:
        """Write what is left, close the file, stop the thread."""
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        d: Deferred[Any] = self._opening if self._opening is not None else succeed(None)
        d.addBoth(lambda _: self._flushing)
        d.addBoth(lambda _: self.flush())
        d.addBoth(lambda _: self._close())
        return d

    def _close(self) -> Deferred[None]:
        store, self._store = self._store, None
        d: Deferred[Any] = succeed(None) if store is None else self._worker.run(store.close)
        d.addErrback(lambda f: _log.failure("history: closing {path}", f, path=self.path))
        d.addBoth(lambda _: self._worker.stop())
        return d

    def run_on_database(self, work: Callable[[sqlite3.Connection], T]) -> Deferred[T]:
        """C{work(connection)} on the database thread, once the file is open, in order
        with the history's own calls: for other tables in the same file (the alert log).

        Fails (C{RuntimeError}) when the service is not running or the database
        could not be opened.
        """
        if self._opening is None:
            return fail(RuntimeError("the history is not running"))
        ready: Deferred[None] = Deferred()

        def opened(result: object) -> object:
            ready.callback(None)
            return result

        self._opening.addBoth(opened)

        def run(_: None) -> Deferred[T]:
            if self._store is None:
                return fail(RuntimeError(f"the history database {self.path} is not open"))
            return self._worker.run(work, self._store.db)

        return ready.addCallback(run)

    # -- recording ---------------------------------------------------------

    def record(self, snapshot: Mapping[str, object]) -> None:
        """Add one snapshot's numbers to the open buckets (cheap: runs on the reactor)."""
        timestamp = snapshot.get("timestamp")
        if self._unusable or isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
            return
        if not math.isfinite(timestamp):
            return
        numbers = flatten(snapshot)
        self._names.update(numbers)
        if self._buckets.add(timestamp, numbers):
            self._dropped_some()

    def _dropped_some(self) -> None:
        if not self._dropping:
            self._dropping = True
            _log.warn(
                "history: {limit} unwritten rows in memory, dropping the oldest "
                "(they are counted in /health history.dropped_rows)",
                limit=self._buckets.limit,
            )

    def flush(self) -> Deferred[None]:
        """Write everything accumulated, in one transaction on the database thread."""
        if self._store is None or self._flushing is not None or not len(self._buckets):
            return succeed(None)
        taken = self._inflight = self._buckets.take()
        written = self._worker.run(_timed_write, self._store, taken, self._buckets.latest)
        d = self._flushing = written.addCallbacks(
            self._flushed, self._flush_failed, errbackArgs=(taken,)
        )
        d.addBoth(self._flush_done)
        return d

    def _flushed(self, outcome: tuple[FlushResult, float, float]) -> None:
        result, duration, cpu = outcome
        self._last_flush = self._wall()
        self._last_duration = duration
        self._last_cpu = cpu
        self._size = result.size_bytes
        self._oldest = result.oldest
        if self._store is not None:
            self._oldest_by_step = self._store.oldest_by_step()
        if self._failing:
            _log.info("history: writing to {path} works again", path=self.path)
        self._failing = False
        self._last_error = None
        if len(self._buckets) < self._buckets.limit:
            self._dropping = False

    def _flush_failed(self, failure: Failure, taken: Mapping[Key, Part]) -> None:
        self._failures += 1
        self._last_error = f"{type(failure.value).__name__}: {failure.value}"
        if self._buckets.give_back(taken):
            self._dropped_some()
        if not self._failing:
            self._failing = True
            _log.error(
                "history: cannot write to {path} ({error}); keeping up to {limit} rows "
                "in memory and retrying every {interval}s",
                path=self.path,
                error=self._last_error,
                limit=self._buckets.limit,
                interval=self._flush_interval,
            )

    def _flush_done(self, _: object) -> None:
        self._flushing = None
        self._inflight = {}

    # -- reading (HistoryReader) -------------------------------------------

    def names(self) -> Deferred[list[str]]:
        return succeed(sorted(self._names))

    def oldest(self) -> Deferred[float | None]:
        return succeed(self._oldest)

    def choose(self, start: float, end: float, points: int) -> Resolution:
        """The resolution to read for about C{points} points over C{[start, end)}.

        The coarsest one no coarser than a point (so few rows are read and no
        detail is lost) whose data reaches back to C{start}; else the finest
        that reaches back that far; else the one reaching back furthest.  Its
        rows are then merged C{k} at a time (L{output_step}): 7 days at 600
        points come from the 15 min level as ~670 points of 15 min, not as 56
        points of the 3 h level.
        """
        wanted = (end - start) / max(1, points)

        def covers(r: Resolution) -> bool:
            first = self._oldest_by_step.get(r.step)
            return first is not None and first <= start

        fine = [r for r in self.resolutions if r.step <= wanted] or [self.resolutions[0]]
        for resolution in reversed(fine):
            if covers(resolution):
                return resolution
        for resolution in self.resolutions:
            if covers(resolution):
                return resolution
        reach = [
            (first, i)
            for i, r in enumerate(self.resolutions)
            if (first := self._oldest_by_step.get(r.step)) is not None
        ]
        return self.resolutions[min(reach)[1]] if reach else fine[-1]

    @staticmethod
    def output_step(resolution: Resolution, start: float, end: float, points: int) -> int:
        """A whole number of C{resolution}'s steps, so the answer has at most about C{points}."""
        wanted = (end - start) / max(1, points)
        return max(1, math.ceil(wanted / resolution.step)) * resolution.step

    def query(
        self, names: Sequence[str], start: float, end: float, points: int
    ) -> Deferred[SeriesData]:
        for name in names:
            if name not in self._names:
                return fail(KeyError(name))
        if self._queries >= self._max_queries:
            return fail(self._refuse())
        resolution = self.choose(start, end, points)
        source = resolution.step
        step = self.output_step(resolution, start, end, points)
        first = int(start // step) * step
        stop = math.ceil(end / step) * step
        if self._store is None:
            d: Deferred[Any] = succeed([])
        else:
            self._queries += 1
            d = self._worker.run(self._store.query, source, list(names), first, stop, step)
            d.addBoth(self._query_done)
        d.addCallback(self._answer, names, start, end, source, step, first, stop)
        return d

    def _refuse(self) -> HistoryBusy:
        self._refused += 1
        if not self._refusing:
            self._refusing = True
            _log.warn(
                "history: {limit} queries already waiting for {path}; refusing more "
                "(counted in /health history.queries_refused)",
                limit=self._max_queries,
                path=self.path,
            )
        return HistoryBusy(f"{self._max_queries} history queries running; retry shortly")

    def _query_done(self, result: T) -> T:
        self._queries -= 1
        if self._refusing and self._queries == 0:
            self._refusing = False
            _log.info("history: queries are accepted again")
        return result

    def _answer(
        self,
        rows: list[tuple[int, str, float, float, float, int]],
        names: Sequence[str],
        start: float,
        end: float,
        source: int,
        step: int,
        first: int,
        stop: int,
    ) -> SeriesData:
        """The stored rows (already merged into buckets of C{step} by the store) and
        what waits in memory for the C{source} resolution, on one axis.

        At most one row per output bucket and series comes from the store; the
        parts in memory (the last flush interval or so) are folded in here.
        """
        count = len(range(first, stop, step))
        lows: dict[str, list[float | None]] = {name: [None] * count for name in names}
        highs: dict[str, list[float | None]] = {name: [None] * count for name in names}
        sums = {name: [0.0] * count for name in names}
        ns = {name: [0.0] * count for name in names}
        for row_bucket, row_name, row_min, row_sum, row_max, row_n in rows:
            i = (row_bucket - first) // step
            lows[row_name][i] = row_min
            sums[row_name][i] = row_sum
            highs[row_name][i] = row_max
            ns[row_name][i] = row_n
        wanted = set(names)
        for pending in (self._inflight, self._buckets.parts):
            for (s, bucket, name), (lo, total, hi, n) in pending.items():
                if s == source and name in wanted and first <= bucket < stop:
                    i = (bucket - first) // step
                    low, high = lows[name][i], highs[name][i]
                    lows[name][i] = lo if low is None or lo < low else low
                    highs[name][i] = hi if high is None or hi > high else high
                    sums[name][i] = sums[name][i] + total if ns[name][i] else total
                    ns[name][i] += n
        values: dict[str, dict[str, list[float | None]]] = {}
        for name in names:
            avg: list[float | None] = [
                t / n if n else None for t, n in zip(sums[name], ns[name], strict=True)
            ]
            values[name] = {"min": lows[name], "avg": avg, "max": highs[name]}
        return SeriesData(
            start=float(first),
            end=float(end),
            step=step,
            t=[float(b) for b in range(first, stop, step)],
            values=values,
        )

    # -- health and metrics ------------------------------------------------

    def state(self) -> dict[str, Any]:
        """C{/health}'s C{"history"} (the keys of L{pistatsd.status.HISTORY_OFF})."""
        return {
            "enabled": True,
            "path": self.path,
            "open": self._store is not None,
            "size_bytes": self._size,
            "max_bytes": self._max_bytes,
            "series": len(self._names),
            "oldest": self._oldest,
            "pending_rows": len(self._buckets) + len(self._inflight),
            "dropped_rows": self._buckets.dropped,
            "last_flush": self._last_flush,
            "last_flush_seconds": self._last_duration,
            "last_flush_cpu_seconds": self._last_cpu,
            "flush_failures": self._failures,
            "last_error": self._last_error,
            "queries_running": self._queries,
            "queries_refused": self._refused,
        }
