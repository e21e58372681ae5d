"""The InfluxDB reporter: a report loop, a pump with backoff, a bounded shutdown.

Every report interval the daemon's points are put in the L{Backlog} and the
backlog is pumped: one request at a time, oldest first (the backlog hands
out the spool before the queue, so order holds across restarts).  What
happens after an attempt depends only on its L{Outcome}:

 - delivered: the next batch goes at once;
 - 413: the batch is halved and sent again (a single point still too large is
   dropped and counted);
 - another 4xx: sending it again cannot help: dropped and counted, the
   server's message logged once per episode;
 - 5xx, 408, 429, timeouts, refused connections: the batch waits, the next try
   after an exponential backoff with jitter (or the server's C{Retry-After}).

The backlog bounds memory and keeps the spool (see L{pistatsd.influx.backlog});
what it drops is reported to InfluxDB itself (a C{pistatsd_reporter} point)
as soon as a write succeeds again.

Nothing here blocks or raises into the reactor: the loop catches per
iteration, HTTP has explicit timeouts on the injected clock, and shutdown
waits at most C{shutdown_flush} seconds before spooling what is left.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IPolicyForHTTPS

from pistatsd.influx.backlog import Backlog, Batch, Drops
from pistatsd.influx.backoff import Backoff
from pistatsd.influx.connection import QuietConnectionPool, build_client
from pistatsd.influx.health import Health, HealthValue
from pistatsd.influx.lineprotocol import Point, timestamp_of
from pistatsd.influx.spool import Spool
from pistatsd.influx.writer import HTTPClient, InfluxTarget, Outcome, Verdict, post
from pistatsd.loops import Repeating

_log = Logger()

__all__ = ["MAX_BATCH", "InfluxReporter", "PointSource"]

MAX_BATCH = 5000
"""Lines per POST at most (InfluxDB's own advice is 5000)."""


class PointSource(Protocol):
    """Where an interval's points come from (L{pistatsd.influx.points.DaemonPoints})."""

    host: str

    def __call__(self, timestamp: int) -> list[Point]:
        """Every point for the interval ending at C{timestamp}; never raises."""


_CREATE_DATABASE = Batch([])
"""The request that creates the database: a batch of no lines, which the
backlog never handed out (so putting it back is a no-op)."""


class InfluxReporter(Service):
    """Reports the daemon's points to InfluxDB every C{interval} seconds.

    Owns its lifecycle: the HTTP connection pool (unless a client is
    injected), the loop and the spool are set up in L{startService} and
    released in L{stopService}, which returns a Deferred that fires within
    about C{shutdown_flush} seconds.

    What waits to be sent (and what was lost) is the L{Backlog}'s business;
    this class decides when to send and what each answer means.
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
        tls_policy: IPolicyForHTTPS | None = None,
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
        @param wall: the wall clock: point timestamps, C{last_success} and
            C{last_failure_time}.
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
        self._backlog = Backlog(
            limit=self.queue_size, spool=spool, spool_after=spool_after, url=target.display_url
        )
        self._injected_http = http
        self._http: HTTPClient | None = http
        self._tls_policy = tls_policy
        self._backoff = Backoff(initial_backoff, max_backoff, random)
        self._batch_max = max(1, min(batch_size, self.queue_size))
        self._batch_limit = self._batch_max
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._shutdown_flush = shutdown_flush
        self._create_database = create_database and target.api == "v1"
        self._create_ignored = create_database and target.api != "v1"
        self._database_ready = not self._create_database

        self._loop: Repeating | None = None
        self._pool: QuietConnectionPool | None = None
        self._job: Batch | None = None
        self._request: Deferred[None] | None = None
        self._retry: IDelayedCall | None = None
        self._pumping = False
        self._pump_again = False
        self._stopping = False
        self._giving_up = False
        self._drained: Deferred[None] | None = None

        #: Points delivered, cumulative since start (drops: L{drops}).
        self.delivered = 0
        self.health = Health(target.display_url)

    # -- lifecycle ---------------------------------------------------------

    def startService(self) -> None:
        """Open the pool and the spool, start the loop, and start replaying at once."""
        super().startService()
        self._stopping = False
        self._giving_up = False
        if self._injected_http is None:
            # treq's request() is typed more narrowly than it works (its reactor must
            # also resolve names; it answers a private IResponse proxy): structurally,
            # it is the HTTPClient that writer.post uses.
            self._http, self._pool = build_client(  # type: ignore[assignment]
                self._clock, self._tls_policy, self._connect_timeout
            )
        self._backlog.open()
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
        self._loop = Repeating(self._clock, self._tick, "InfluxDB report")
        self._loop.start(self.interval, now=False)
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
            self._backlog.close()
            return self._close_pool()

        return drained.addBoth(finish)

    def _close_pool(self) -> Deferred[None]:
        """Close the pooled connection (if any); fires once it is closed."""
        pool, self._pool = self._pool, None
        if self._injected_http is None:
            self._http = None
        if pool is None:
            return succeed(None)
        return pool.closeCachedConnections()

    # -- state -------------------------------------------------------------

    @property
    def drops(self) -> Drops:
        """Points lost, by reason."""
        return self._backlog.drops

    @property
    def dropped(self) -> int:
        """Points lost for any reason: overflow, rejected, spool cap, corrupt, I/O."""
        return self._backlog.drops.total

    @property
    def rejected(self) -> int:
        """Points InfluxDB refused for good."""
        return self._backlog.drops.rejected

    def state(self) -> dict[str, HealthValue]:
        """The C{/health} view (see L{Health.view}): no credentials, ever."""
        backlog = self._backlog
        return self.health.view(
            api=self.target.api,
            queued=backlog.queued,
            spooled=backlog.spooled,
            dropped=backlog.drops.total,
            retrying=self._retry is not None or self._backoff.failures > 0,
        )

    def counters(self) -> dict[str, int]:
        """Cumulative counters, for C{/metrics}."""
        return {"delivered": self.delivered, **self._backlog.counters()}

    def enqueue(self, points: Sequence[Point]) -> None:
        """Queue points made between reports (alert changes) behind what waits, and
        send them as soon as the pump may: the same bounded backlog as the reports."""
        lines = [point.line() for point in points]
        if not lines:
            return
        self._backlog.put(lines, self._clock.seconds())
        if self.running and not self._stopping:
            self._pump()

    # -- the report loop -------------------------------------------------------

    def _tick(self) -> None:
        """One report interval; never raises (a LoopingCall dies on the first error)."""
        try:
            self._report()
            self._backlog.spool_stale(self._clock.seconds())
            self._pump()
        except Exception:
            _log.failure("InfluxDB report failed; trying again next interval")

    def _report(self) -> None:
        """Render this interval's points into the backlog."""
        lines = [point.line() for point in self._points(timestamp_of(self._wall()))]
        self._backlog.put(lines, self._clock.seconds())

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

    def _next_job(self) -> Batch | None:
        if not self._database_ready:
            return _CREATE_DATABASE
        return self._backlog.next_batch(self._batch_limit)

    def _send(self, job: Batch) -> Deferred[None]:
        assert self._http is not None
        if job is _CREATE_DATABASE:
            url, body, headers = self.target.create_database_request()
        else:
            url, body, headers = self.target.write_request(job.lines)
        d = post(
            self._http,
            self._clock,
            url,
            body,
            headers,
            self._timeout,
            self.target.scrub,
            wall=self._wall,
        )
        return d.addCallback(self._answered, job).addErrback(self._unexpected, job)

    def _answered(self, outcome: Outcome, job: Batch) -> None:
        self._job = None
        self._request = None
        if self._giving_up and outcome.verdict is Verdict.RETRY:
            # Cancelled by the shutdown deadline (already logged): not a new problem.
            self._backlog.put_back(job)
            self._fire_drained()
            return
        if job is _CREATE_DATABASE:
            self._database_answer(outcome)
        elif outcome.verdict is Verdict.DELIVERED:
            self._delivered(job)
        elif outcome.verdict is Verdict.SPLIT and len(job.lines) > 1:
            self._backlog.put_back(job)
            self._batch_limit = max(1, len(job.lines) // 2)
            self.health.trouble("split", outcome.message, "sending smaller batches")
        elif outcome.verdict in (Verdict.SPLIT, Verdict.REJECTED):
            if outcome.database_not_found and self._create_database:
                self._database_ready = False
                self._backlog.put_back(job)
                self._retry_later(outcome)
                return
            self._rejected(job, outcome)
        else:
            self._backlog.put_back(job)
            self._retry_later(outcome)
            return
        self._pump()

    def _unexpected(self, failure: Failure, job: Batch) -> None:
        """A bug, not a network problem: log it with its traceback, once per episode."""
        if self._job is job:
            self._job = None
            self._request = None
            self._backlog.put_back(job)
        if self.health.problem != "unexpected":
            _log.failure("InfluxDB reporter: unexpected error; retrying", failure=failure)
        self._retry_later(Outcome(Verdict.RETRY, None, "internal error"), "unexpected")

    def _database_answer(self, outcome: Outcome) -> None:
        if outcome.verdict is Verdict.DELIVERED:
            self._database_ready = True
            self._backoff.reset()
            _log.info(
                "InfluxDB database {db} is ready at {url}",
                db=self.target.database,
                url=self.target.display_url,
            )
            self.health.recovered()
            self._pump()
        elif outcome.verdict is Verdict.REJECTED:
            # No right to create it (or no such API): write anyway; the writes
            # will tell whether the database exists.
            self._database_ready = True
            self._create_database = False
            self.health.trouble(f"create:{outcome.status}", outcome.message, "writing without it")
            self._pump()
        else:
            self._retry_later(outcome)

    def _delivered(self, batch: Batch) -> None:
        self.delivered += len(batch.lines)
        self._backoff.reset()
        self.health.succeeded(self._wall())
        self._backlog.delivered(batch)
        if self._backlog.drops.unreported:
            self._report_drops()

    def _report_drops(self) -> None:
        """Tell InfluxDB itself what was lost, now that it listens again."""
        point = self._backlog.drops.report(self._points.host, timestamp_of(self._wall()))
        self._backlog.put([point.line()], self._clock.seconds())

    def _rejected(self, batch: Batch, outcome: Outcome) -> None:
        """Dropped for good: count it (InfluxDB's own count for a partial write)."""
        count = len(batch.lines)
        if outcome.partially_dropped is not None:
            count = min(count, outcome.partially_dropped)
            self.delivered += len(batch.lines) - count
        self.health.rejected(count)
        self.health.failed(outcome.message, self._wall())
        self._backlog.rejected(batch, count)
        self.health.trouble(
            f"rejected:{outcome.status}", outcome.message, "dropping the points (not retried)"
        )

    def _retry_later(self, outcome: Outcome, key: str | None = None) -> None:
        """Back off (exponentially, with jitter; at least C{Retry-After}) and try again."""
        self.health.failed(outcome.message, self._wall())
        self._backoff.failed()
        self.health.trouble(
            key or f"retry:{outcome.status}", outcome.message, "retrying with backoff"
        )
        if self._stopping:
            self._fire_drained()
            return
        self._backlog.spool_stale(self._clock.seconds())
        delay = self._backoff.delay(outcome.retry_after)
        self._retry = self._clock.callLater(delay, self._retry_now)

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
