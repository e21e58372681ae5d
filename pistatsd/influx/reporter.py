"""The InfluxDB reporter: a report loop, a bounded queue, backoff, the spool, a bounded shutdown.

Every report interval the daemon's points are rendered into the queue and the
queue is pumped: one request at a time, oldest first (the spool before the
queue, so order holds across restarts).  What happens after an attempt
depends only on its L{Outcome}:

 - delivered: the next batch goes at once;
 - 413: the batch is halved and sent again (a single point still too large is
   dropped and counted);
 - another 4xx: sending it again cannot help: dropped and counted, the
   server's message logged once per episode;
 - 5xx, 408, 429, timeouts, refused connections: the batch waits, the next try
   after an exponential backoff with jitter (or the server's C{Retry-After}).

Memory is bounded: beyond C{queue_size} points the oldest are dropped and
counted; points that waited more than a minute go to the spool file, which
has its own cap.  Drops are reported to InfluxDB itself (a
C{pistatsd_reporter} point) as soon as a write succeeds again, and logged
once when they start and once when they end.

Nothing here blocks or raises into the reactor: the loop catches per
iteration, HTTP has explicit timeouts on the injected clock, and shutdown
waits at most C{shutdown_flush} seconds before spooling what is left.
"""

from __future__ import annotations

import random as _random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlencode

from attrs import frozen
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from pistatsd.influx.lineprotocol import Point, timestamp_of
from pistatsd.influx.spool import Spool, SpoolBatch
from pistatsd.influx.writer import (
    HTTPClient,
    InfluxTarget,
    Outcome,
    Verdict,
    create_database_statement,
    post,
)

_log = Logger()

MAX_BATCH = 5000
"""Lines per POST at most (InfluxDB's own advice is 5000)."""

SPOOL_BATCH = 1000
"""Lines per spool read at most: each read (and the check of every line) is
synchronous, so it is kept to a few milliseconds even on a Raspberry Pi."""


class PointSource(Protocol):
    """Where an interval's points come from (L{pistatsd.influx.points.DaemonPoints})."""

    host: str

    def __call__(self, timestamp: int) -> list[Point]:
        """Every point for the interval ending at C{timestamp}; never raises."""


@frozen
class _Job:
    """One request to make: create the database, or write lines from the spool or queue."""

    kind: str
    """C{"create"}, C{"spool"} or C{"queue"}."""
    lines: list[str]
    items: list[tuple[float, str]] | None = None
    """For C{"queue"}: the (enqueued at, line) pairs, put back on a retry."""
    spooled: SpoolBatch | None = None


class InfluxReporter(Service):
    """Reports the daemon's points to InfluxDB every C{interval} seconds.

    Owns its lifecycle: the HTTP connection pool (unless a client is
    injected), the loop and the spool are set up in L{startService} and
    released in L{stopService}, which returns a Deferred that fires within
    about C{shutdown_flush} seconds.
    """

    def __init__(
        self,
        *,
        target: InfluxTarget,
        clock: IReactorTime,
        points: PointSource,
        interval: float = 60.0,
        queue_size: int = 10000,
        spool: Spool | None = None,
        http: HTTPClient | None = None,
        tls_policy: Any = None,
        random: Callable[[], float] = _random.random,
        create_database: bool = False,
        batch_size: int = MAX_BATCH,
        timeout: float = 10.0,
        connect_timeout: float = 10.0,
        spool_after: float = 60.0,
        shutdown_flush: float = 5.0,
        initial_backoff: float = 1.0,
        max_backoff: float = 300.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """
        @param target: where and how to write.
        @param clock: the reactor: timers, how long points waited, and (without
            C{http}) connections.
        @param wall: the wall clock: point timestamps and C{last_success}.
        @param points: builds each interval's points.
        @param queue_size: points held in memory at most (C{--influx-queue}).
        @param spool: the spool file, or None to keep nothing across restarts.
        @param http: an injected treq client (tests); by default one is built
            on an C{HTTPConnectionPool} owned by this service.
        @param tls_policy: C{IPolicyForHTTPS} for C{https://} (default: system trust).
        @param random: source of jitter in [0, 1), injected so tests are exact.
        @param create_database: v1: C{CREATE DATABASE} before the first write.
        @param spool_after: points older than this move from memory to the spool.
        @param shutdown_flush: how long L{stopService} may try to deliver.
        """
        self.setName("influx")
        self.target = target
        self._clock = clock
        self._wall = wall
        self._points = points
        self.interval = interval
        self.queue_size = max(1, queue_size)
        self._spool = spool
        self._injected_http = http
        self._http: HTTPClient | None = http
        self._tls_policy = tls_policy
        self._random = random
        self._batch_max = max(1, min(batch_size, self.queue_size))
        self._batch_limit = self._batch_max
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._spool_after = spool_after
        self._shutdown_flush = shutdown_flush
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._create_database = create_database and target.api == "v1"
        self._create_ignored = create_database and target.api != "v1"
        self._database_ready = not self._create_database

        self._queue: deque[tuple[float, str]] = deque()
        self._loop: LoopingCall | None = None
        self._pool: Any = None
        self._job: _Job | None = None
        self._request: Deferred[Outcome] | None = None
        self._retry: IDelayedCall | None = None
        self._pumping = False
        self._pump_again = False
        self._failures = 0
        self._stopping = False
        self._giving_up = False
        self._drained: Deferred[None] | None = None

        #: Counters, cumulative since start.
        self.delivered = 0
        self.overflowed = 0
        self.rejected = 0
        self.spool_overflowed = 0
        self.spool_corrupt = 0
        self.lost = 0
        self._unreported = 0
        self.last_success: float | None = None
        self.last_error: str | None = None

        # Episodes: one log line when they start, one when they end.
        self._problem: str | None = None
        self._problem_attempts = 0
        self._problem_dropped = 0
        self._overflow_episode = 0
        self._spool_problem = False
        self._spool_full_episode = 0

    # -- lifecycle ---------------------------------------------------------

    def startService(self) -> None:
        """Open the pool and the spool, start the loop, and start replaying at once."""
        super().startService()
        self._stopping = False
        self._giving_up = False
        if self._injected_http is None:
            self._http = self._build_client()
        if self._spool is not None:
            waiting = self._spool.open()
            if self._spool.torn:
                self.spool_corrupt += self._spool.torn
                self._unreported += self._spool.torn
                _log.warn(
                    "InfluxDB spool {path}: cut off a last line torn by a crash",
                    path=self._spool.path,
                )
            if waiting:
                _log.info(
                    "InfluxDB spool: {n} points from an earlier run will be sent first",
                    n=waiting,
                )
        if self.target.url_had_credentials:
            _log.warn(
                "Credentials in the --influx URL are ignored; use --influx-user with "
                "--influx-password-file (or PISTATSD_INFLUX_PASSWORD)"
            )
        if self._create_ignored:
            _log.info("--influx-create-db applies to the v1 API only; ignored with a token")
        _log.info(
            "Reporting to InfluxDB at {url} ({api}) every {interval} s",
            url=self.target.display_url,
            api=self.target.api,
            interval=self.interval,
        )
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        self._loop.start(self.interval, now=False).addErrback(self._loop_died)
        self._pump()

    def stopService(self) -> Deferred[None]:
        """Report the last partial interval, try to deliver for up to
        C{shutdown_flush} seconds, spool the rest, close the pool."""
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        try:
            self._report()
        except Exception:
            _log.failure("InfluxDB: the last report could not be built")
        self._stopping = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        drained: Deferred[None] = Deferred()
        self._drained = drained
        deadline = self._clock.callLater(self._shutdown_flush, self._give_up)
        self._pump()

        def finish(_: object) -> Deferred[None]:
            if deadline.active():
                deadline.cancel()
            self._drained = None
            self._spool_everything()
            return self._close_pool()

        return drained.addBoth(finish)

    def _build_client(self) -> HTTPClient:
        """One connection pool and agent for the life of the service."""
        from treq.client import HTTPClient as TreqClient
        from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

        self._pool = HTTPConnectionPool(self._clock, persistent=True)
        self._pool.maxPersistentPerHost = 1
        self._pool.retryAutomatically = False
        # Shorter than the idle timeout of most servers and proxies, so a
        # pooled connection is rarely found closed by the other side.
        self._pool.cachedConnectionTimeout = 50
        agent = Agent(
            self._clock,
            contextFactory=self._tls_policy or BrowserLikePolicyForHTTPS(),
            connectTimeout=self._connect_timeout,
            pool=self._pool,
        )
        return TreqClient(agent)

    def _close_pool(self) -> Deferred[None]:
        pool, self._pool = self._pool, None
        if self._injected_http is None:
            self._http = None
        if pool is None:
            return succeed(None)
        return pool.closeCachedConnections()

    # -- state -------------------------------------------------------------

    @property
    def dropped(self) -> int:
        """Points lost for any reason: overflow, rejected, spool cap, corrupt, I/O."""
        return (
            self.overflowed + self.rejected + self.spool_overflowed + self.spool_corrupt + self.lost
        )

    @property
    def queued(self) -> int:
        """Points in memory, the batch in flight included."""
        inflight = (
            len(self._job.lines) if self._job is not None and self._job.kind == "queue" else 0
        )
        return len(self._queue) + inflight

    def state(self) -> dict[str, Any]:
        """The C{/health} view: no credentials, ever.

        C{last_error} is the most recent failure and stays after recovery
        (compare it with C{last_success}); C{dropped} counts every point lost
        for any reason (L{counters} has the breakdown).
        """
        return {
            "enabled": True,
            "url": self.target.display_url,
            "api": self.target.api,
            "last_success": self.last_success,
            "last_error": self.last_error,
            "queued": self.queued,
            "spooled": self._spool.pending if self._spool is not None else 0,
            "dropped": self.dropped,
            "retrying": self._retry is not None or self._failures > 0,
        }

    def counters(self) -> dict[str, int]:
        """Cumulative counters, for C{/metrics}."""
        return {
            "delivered": self.delivered,
            "dropped_overflow": self.overflowed,
            "dropped_rejected": self.rejected,
            "dropped_spool_overflow": self.spool_overflowed,
            "dropped_spool_corrupt": self.spool_corrupt,
            "dropped_lost": self.lost,
            "queued": self.queued,
            "spooled": self._spool.pending if self._spool is not None else 0,
        }

    # -- the report loop -------------------------------------------------------

    def _tick(self) -> None:
        """One report interval; never raises (a LoopingCall dies on the first error)."""
        try:
            self._report()
            self._maybe_spool()
            self._pump()
        except Exception:
            _log.failure("InfluxDB report failed; trying again next interval")

    def _report(self) -> None:
        """Render this interval's points into the queue."""
        lines = [point.line() for point in self._points(timestamp_of(self._wall()))]
        self._enqueue(lines, self._clock.seconds())

    def _enqueue(self, lines: list[str], now: float) -> None:
        """Queue lines; beyond the bound, drop the oldest waiting ones (counted)."""
        self._queue.extend((now, line) for line in lines)
        self._enforce_bound()

    def _enforce_bound(self) -> None:
        excess = self.queued - self.queue_size
        if excess <= 0:
            return
        excess = min(excess, len(self._queue))
        for _ in range(excess):
            self._queue.popleft()
        self.overflowed += excess
        self._unreported += excess
        if self._overflow_episode == 0:
            _log.warn(
                "InfluxDB queue full ({limit} points): dropping the oldest until "
                "InfluxDB at {url} catches up",
                limit=self.queue_size,
                url=self.target.display_url,
            )
        self._overflow_episode += excess

    def _end_overflow(self) -> None:
        if self._overflow_episode and self.queued < self.queue_size:
            _log.info(
                "InfluxDB queue no longer full: {n} oldest points were dropped",
                n=self._overflow_episode,
            )
            self._overflow_episode = 0

    def _maybe_spool(self) -> None:
        """Points that waited more than C{spool_after} go to disk (all of them, in order)."""
        if self._spool is None or not self._queue:
            return
        if self._job is not None and self._job.kind == "queue":
            return  # its lines are older: wait for the outcome so order holds
        if self._clock.seconds() - self._queue[0][0] < self._spool_after:
            return
        self._spool_queue()
        self._end_overflow()

    def _spool_queue(self) -> bool:
        """Move the whole queue to the spool; False (queue kept) if the file cannot take it."""
        assert self._spool is not None
        lines = [line for _, line in self._queue]
        try:
            dropped = self._spool.append(lines)
        except OSError as e:
            if not self._spool_problem:
                self._spool_problem = True
                _log.warn(
                    "InfluxDB spool {path} cannot be written ({error}); keeping points in memory",
                    path=self._spool.path,
                    error=e,
                )
            return False
        if self._spool_problem:
            self._spool_problem = False
            _log.info("InfluxDB spool {path} can be written again", path=self._spool.path)
        self._queue.clear()
        if dropped:
            self.spool_overflowed += dropped
            self._unreported += dropped
            if self._spool_full_episode == 0:
                _log.warn(
                    "InfluxDB spool {path} is full ({limit} bytes): dropping the oldest points",
                    path=self._spool.path,
                    limit=self._spool.max_bytes,
                )
            self._spool_full_episode += dropped
        return True

    def _spool_everything(self) -> None:
        """At shutdown: whatever is still in memory goes to the spool, or is counted lost."""
        if self._queue:
            count = len(self._queue)
            if self._spool is not None and self._spool_queue():
                _log.info(
                    "InfluxDB: {n} unsent points spooled to {path} for the next start",
                    n=count,
                    path=self._spool.path,
                )
            else:
                self.lost += count
                self._queue.clear()
                _log.warn("InfluxDB: {n} unsent points lost at shutdown", n=count)
        if self._spool is not None:
            self._spool.close()

    # -- the pump -------------------------------------------------------------

    def _pump(self) -> None:
        """Start the next request if none is running and no retry is pending.

        Re-entrant calls (a response that arrives synchronously, as with
        StubTreq) only ask for another round: no recursion, however many
        batches are sent in a row.
        """
        if self._pumping:
            self._pump_again = True
            return
        self._pumping = True
        try:
            self._pump_again = True
            while self._pump_again:
                self._pump_again = False
                self._start_next()
        finally:
            self._pumping = False

    def _start_next(self) -> None:
        if self._job is not None or self._retry is not None:
            return
        job = self._next_job() if self._http is not None else None
        if job is None:
            # Caught up: a 413 episode's smaller batches were for that backlog.
            self._batch_limit = self._batch_max
            if self._stopping:
                self._fire_drained()
            return
        self._job = job
        d = self._send(job)
        if self._job is job:  # not answered synchronously
            self._request = d

    def _next_job(self) -> _Job | None:
        if not self._database_ready:
            return _Job("create", [])
        spool = self._spool
        while spool is not None and spool.pending:
            batch = spool.read(min(self._batch_limit, SPOOL_BATCH))
            if batch.lines:
                return _Job("spool", batch.lines, spooled=batch)
            if batch.consumed == 0:  # pending lines, yet nothing readable
                lost = spool.discard()
                self.lost += lost
                self._unreported += lost
                _log.warn(
                    "InfluxDB spool {path} is unreadable: {n} points lost",
                    path=spool.path,
                    n=lost,
                )
                break
            self._commit_spool(batch)  # only corrupt lines in it
        if self._queue:
            count = min(self._batch_limit, len(self._queue))
            items = [self._queue.popleft() for _ in range(count)]
            return _Job("queue", [line for _, line in items], items=items)
        return None

    def _send(self, job: _Job) -> Deferred[None]:
        assert self._http is not None
        if job.kind == "create":
            statement = create_database_statement(self.target.database)
            d = post(
                self._http,
                self._clock,
                self.target.query_url(),
                urlencode({"q": statement}).encode("ascii"),
                self.target.headers("application/x-www-form-urlencoded"),
                self._timeout,
                self.target.scrub,
                wall=self._wall,
            )
        else:
            body = ("\n".join(job.lines) + "\n").encode("utf-8")
            d = post(
                self._http,
                self._clock,
                self.target.write_url(),
                body,
                self.target.headers("text/plain; charset=utf-8"),
                self._timeout,
                self.target.scrub,
                wall=self._wall,
            )
        d.addCallback(self._answered, job)
        d.addErrback(self._unexpected, job)
        return d

    def _answered(self, outcome: Outcome, job: _Job) -> None:
        self._job = None
        self._request = None
        if self._giving_up and outcome.verdict is Verdict.RETRY:
            # Cancelled by the shutdown deadline (already logged): not a new problem.
            self._put_back(job)
            self._fire_drained()
            return
        if job.kind == "create":
            self._database_answer(outcome)
        elif outcome.verdict is Verdict.DELIVERED:
            self._delivered(job)
        elif outcome.verdict is Verdict.SPLIT and len(job.lines) > 1:
            self._put_back(job)
            self._batch_limit = max(1, len(job.lines) // 2)
            self._problem_start("split", outcome, "sending smaller batches")
        elif outcome.verdict in (Verdict.SPLIT, Verdict.REJECTED):
            if outcome.database_not_found and self._create_database:
                self._database_ready = False
                self._put_back(job)
                self._retry_later(outcome)
                return
            self._rejected(job, outcome)
        else:
            self._put_back(job)
            self._retry_later(outcome)
            return
        self._pump()

    def _unexpected(self, failure: Failure, job: _Job) -> None:
        """A bug, not a network problem: log it with its traceback, once per episode."""
        if self._job is job:
            self._job = None
            self._request = None
            if job.kind != "create":
                self._put_back(job)
        if self._problem != "unexpected":
            _log.failure("InfluxDB reporter: unexpected error; retrying", failure=failure)
        self._retry_later(Outcome(Verdict.RETRY, None, "internal error"), "unexpected")

    def _database_answer(self, outcome: Outcome) -> None:
        if outcome.verdict is Verdict.DELIVERED:
            self._database_ready = True
            self._failures = 0
            _log.info(
                "InfluxDB database {db} is ready at {url}",
                db=self.target.database,
                url=self.target.display_url,
            )
            self._end_problem()
            self._pump()
        elif outcome.verdict is Verdict.REJECTED:
            # No right to create it (or no such API): write anyway; the writes
            # will tell whether the database exists.
            self._database_ready = True
            self._create_database = False
            self._problem_start(f"create:{outcome.status}", outcome, "writing without it")
            self._pump()
        else:
            self._retry_later(outcome)

    def _delivered(self, job: _Job) -> None:
        self.delivered += len(job.lines)
        if job.spooled is not None:
            self._commit_spool(job.spooled)
        self._failures = 0
        self.last_success = self._wall()
        self._end_problem()
        self._end_overflow()
        if self._spool_full_episode and self._spool is not None and not self._spool.pending:
            _log.info(
                "InfluxDB spool drained; {n} of its oldest points had been dropped",
                n=self._spool_full_episode,
            )
            self._spool_full_episode = 0
        if self._unreported:
            self._report_drops()

    def _report_drops(self) -> None:
        """Tell InfluxDB itself what was lost, now that it listens again."""
        point = Point(
            "pistatsd_reporter",
            (("host", self._points.host),),
            (
                ("dropped", self._unreported),
                ("dropped_total", self.dropped),
                ("overflow", self.overflowed),
                ("rejected", self.rejected),
                ("spool_overflow", self.spool_overflowed),
                ("spool_corrupt", self.spool_corrupt),
                ("lost", self.lost),
            ),
            timestamp_of(self._wall()),
        )
        self._unreported = 0
        self._enqueue([point.line()], self._clock.seconds())

    def _rejected(self, job: _Job, outcome: Outcome) -> None:
        """Dropped for good: count it (InfluxDB's own count for a partial write)."""
        count = len(job.lines)
        if outcome.partially_dropped is not None:
            count = min(count, outcome.partially_dropped)
            self.delivered += len(job.lines) - count
        self.rejected += count
        self._unreported += count
        self._problem_dropped += count
        self.last_error = outcome.message
        if job.spooled is not None:
            self._commit_spool(job.spooled)
        self._problem_start(
            f"rejected:{outcome.status}", outcome, "dropping the points (not retried)"
        )

    def _commit_spool(self, batch: SpoolBatch) -> None:
        assert self._spool is not None
        if batch.corrupt:
            self.spool_corrupt += batch.corrupt
            self._unreported += batch.corrupt
            _log.warn(
                "InfluxDB spool {path}: skipped {n} damaged lines",
                path=self._spool.path,
                n=batch.corrupt,
            )
        self._spool.commit(batch)

    def _put_back(self, job: _Job) -> None:
        """The batch was not delivered: it waits again, in its place."""
        if job.items is not None:
            self._queue.extendleft(reversed(job.items))
            self._enforce_bound()
        # A spool batch stays in the file: nothing to do.

    def _retry_later(self, outcome: Outcome, key: str | None = None) -> None:
        """Back off (exponentially, with jitter; at least C{Retry-After}) and try again."""
        self.last_error = outcome.message
        self._failures += 1
        self._problem_start(key or f"retry:{outcome.status}", outcome, "retrying with backoff")
        if self._stopping:
            self._fire_drained()
            return
        self._maybe_spool()
        delay = self._backoff_delay(outcome)
        self._retry = self._clock.callLater(delay, self._retry_now)

    def _backoff_delay(self, outcome: Outcome) -> float:
        base = min(self._max_backoff, self._initial_backoff * 2 ** min(self._failures - 1, 30))
        delay = base * (0.5 + 0.5 * self._random())
        if outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
        return delay

    def _retry_now(self) -> None:
        self._retry = None
        try:
            self._pump()
        except Exception:
            _log.failure("InfluxDB reporter: retry failed")

    # -- shutdown --------------------------------------------------------------

    def _give_up(self) -> None:
        """The shutdown flush ran out of time: cancel the request in flight."""
        if self._request is not None:
            _log.info(
                "InfluxDB at {url} did not answer within the {seconds} s shutdown flush",
                url=self.target.display_url,
                seconds=self._shutdown_flush,
            )
            self._giving_up = True
            self._request.cancel()  # its outcome fires the drain
        self._fire_drained()

    def _fire_drained(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.called:
            drained.callback(None)

    # -- episodes ------------------------------------------------------------------

    def _problem_start(self, key: str, outcome: Outcome, action: str) -> None:
        """Log a problem when it starts (or changes), not on every attempt."""
        self._problem_attempts += 1
        if key == self._problem:
            return
        self._problem = key
        _log.warn(
            "InfluxDB at {url}: {error}; {action}",
            url=self.target.display_url,
            error=outcome.message or "failed",
            action=action,
        )

    def _end_problem(self) -> None:
        if self._problem is None:
            return
        _log.info(
            "InfluxDB at {url} accepts writes again (after {attempts} failed attempts, "
            "{dropped} points rejected)",
            url=self.target.display_url,
            attempts=self._problem_attempts,
            dropped=self._problem_dropped,
        )
        self._problem = None
        self._problem_attempts = 0
        self._problem_dropped = 0

    def _loop_died(self, failure: Failure) -> None:
        """Cannot happen (L{_tick} never raises), but never fail silently."""
        _log.failure("The InfluxDB report loop stopped", failure=failure)
