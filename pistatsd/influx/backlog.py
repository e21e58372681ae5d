"""Points waiting for InfluxDB: a bounded queue in memory, in front of the spool on disk.

The reporter puts each interval's lines in and takes batches out, oldest
first: the spool (what an earlier run or an earlier outage left) before the
queue, so order holds across restarts.  A batch taken out is settled in one
of three ways: L{Backlog.delivered}, L{Backlog.rejected} (dropped for good,
counted) or L{Backlog.put_back} (it waits again, in its place).  At most one
batch is out at a time.

Memory is bounded: beyond C{limit} points (the batch out included) the
oldest are dropped and counted.  Lines that waited longer than
C{spool_after} go to the spool, which has its own cap; so does whatever is
left at shutdown.  Every loss is counted in L{Drops}, and each kind of
trouble (queue full, spool full, spool not writable) is logged once when it
starts and once when it ends.

Time is never read here: the reporter passes C{now} with each call.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from attrs import define, field, frozen
from twisted.logger import Logger

from pistatsd.episodes import Episode
from pistatsd.influx.lineprotocol import Point
from pistatsd.influx.spool import Spool, SpoolBatch

__all__ = ["SPOOL_BATCH", "Backlog", "Batch", "Drops"]

_log = Logger()

SPOOL_BATCH = 1000
"""Lines per spool read at most: each read (and the check of every line) is
synchronous, so it is kept to a few milliseconds even on a Raspberry Pi."""


@define
class Drops:
    """Points lost, by reason, cumulative since start.

    L{unreported} is what was lost since the last L{take_unreported}: the
    reporter writes that number to InfluxDB itself once it listens again.
    """

    overflow: int = 0
    """Dropped from a full queue (oldest first)."""
    rejected: int = 0
    """Refused by InfluxDB for good (a 4xx other than 408/413/429)."""
    spool_overflow: int = 0
    """Cut from a full spool (oldest first)."""
    spool_corrupt: int = 0
    """Damaged or torn lines found in the spool."""
    lost: int = 0
    """Neither delivered nor spooled: an unreadable spool, or a shutdown without one."""
    _reported: int = field(default=0, init=False)
    """L{total} at the last L{take_unreported}."""

    @property
    def total(self) -> int:
        """Every point lost, for any reason."""
        return self.overflow + self.rejected + self.spool_overflow + self.spool_corrupt + self.lost

    @property
    def unreported(self) -> int:
        """Points lost since the last L{take_unreported}."""
        return self.total - self._reported

    def take_unreported(self) -> int:
        """L{unreported}, which starts again from zero."""
        count = self.unreported
        self._reported = self.total
        return count

    def report(self, host: str, timestamp: int) -> Point:
        """The C{pistatsd_reporter} point telling InfluxDB itself what was lost
        since the last report (and in total); starts L{unreported} again."""
        return Point(
            "pistatsd_reporter",
            (("host", host),),
            (
                ("dropped", self.take_unreported()),
                ("dropped_total", self.total),
                ("overflow", self.overflow),
                ("rejected", self.rejected),
                ("spool_overflow", self.spool_overflow),
                ("spool_corrupt", self.spool_corrupt),
                ("lost", self.lost),
            ),
            timestamp,
        )


@frozen
class Batch:
    """Lines taken out of the backlog for one request, and where they came from."""

    lines: list[str]
    items: list[tuple[float, str]] | None = None
    """From the queue: the (put at, line) pairs, restored by L{Backlog.put_back}."""
    spooled: SpoolBatch | None = None
    """From the spool: the read, committed once the batch is settled."""


class Backlog:
    """The bounded queue and the spool behind it; see the module docstring.

    @param limit: points held in memory at most (C{--influx-queue}).
    @param spool: the spool file, or None to keep nothing across restarts.
    @param spool_after: seconds a line may wait in memory before it is spooled.
    @param url: the InfluxDB URL (without credentials), for log lines.
    """

    def __init__(self, *, limit: int, spool: Spool | None, spool_after: float, url: str) -> None:
        self.limit = max(1, limit)
        self.drops = Drops()
        self._spool = spool
        self._spool_after = spool_after
        self._url = url
        self._queue: deque[tuple[float, str]] = deque()
        # The batch from the queue not settled yet (it still counts as queued).
        self._out: Batch | None = None
        # Episodes: one log line when they start, one when they end.
        self._overflow = Episode(
            _log,
            "InfluxDB queue full ({limit} points): dropping the oldest until "
            "InfluxDB at {url} catches up",
            "InfluxDB queue no longer full: {n} oldest points were dropped",
            count_field="n",
        )
        self._spool_problem = Episode(
            _log,
            "InfluxDB spool {path} cannot be written ({error}); keeping points in memory",
            "InfluxDB spool {path} can be written again",
        )
        self._spool_full = Episode(
            _log,
            "InfluxDB spool {path} is full ({limit} bytes): dropping the oldest points",
            "InfluxDB spool drained; {n} of its oldest points had been dropped",
            count_field="n",
        )

    # -- state -------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Points in memory, the batch out included."""
        out = self._out.items if self._out is not None and self._out.items is not None else ()
        return len(self._queue) + len(out)

    @property
    def spooled(self) -> int:
        """Lines in the spool not delivered yet."""
        return self._spool.pending if self._spool is not None else 0

    def counters(self) -> dict[str, int]:
        """Drops by reason, and what waits, for C{/metrics}."""
        drops = self.drops
        return {
            "dropped_overflow": drops.overflow,
            "dropped_rejected": drops.rejected,
            "dropped_spool_overflow": drops.spool_overflow,
            "dropped_spool_corrupt": drops.spool_corrupt,
            "dropped_lost": drops.lost,
            "queued": self.queued,
            "spooled": self.spooled,
        }

    # -- start and stop ------------------------------------------------------

    def open(self) -> int:
        """At start: find what an earlier run spooled (replayed first); how many lines."""
        spool = self._spool
        if spool is None:
            return 0
        waiting = spool.open()
        if spool.torn:
            self.drops.spool_corrupt += spool.torn
            _log.warn("InfluxDB spool {path}: cut off a last line torn by a crash", path=spool.path)
        if waiting:
            _log.info(
                "InfluxDB spool: {n} points from an earlier run will be sent first", n=waiting
            )
        return waiting

    def close(self) -> None:
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
                self.drops.lost += count
                self._queue.clear()
                _log.warn("InfluxDB: {n} unsent points lost at shutdown", n=count)
        if self._spool is not None:
            self._spool.close()

    # -- in and out ----------------------------------------------------------

    def put(self, lines: Sequence[str], now: float) -> None:
        """Queue lines; beyond the bound, drop the oldest waiting ones (counted)."""
        self._queue.extend((now, line) for line in lines)
        self._enforce_bound()

    def next_batch(self, n: int) -> Batch | None:
        """Up to C{n} of the oldest lines (spool first), or None when nothing waits."""
        spool = self._spool
        while spool is not None and spool.pending:
            read = spool.read(min(n, SPOOL_BATCH))
            if read.lines:
                return Batch(read.lines, spooled=read)
            if read.consumed == 0:  # pending lines, yet nothing readable
                lost = spool.discard()
                self.drops.lost += lost
                _log.warn(
                    "InfluxDB spool {path} is unreadable: {n} points lost", path=spool.path, n=lost
                )
                break
            self._commit(read)  # only corrupt lines in it
        if not self._queue:
            return None
        count = min(n, len(self._queue))
        items = [self._queue.popleft() for _ in range(count)]
        batch = Batch([line for _, line in items], items=items)
        self._out = batch
        return batch

    def put_back(self, batch: Batch) -> None:
        """The batch was not delivered: it waits again, in its place (a spool batch
        simply stays in the file)."""
        if batch.items is not None and batch is self._out:
            self._out = None
            self._queue.extendleft(reversed(batch.items))
            self._enforce_bound()

    def delivered(self, batch: Batch) -> None:
        """InfluxDB has the batch: forget it, and end the episodes it ends."""
        self._settle(batch)
        self._end_overflow()
        if self._spool is not None and not self._spool.pending:
            self._spool_full.ended()

    def rejected(self, batch: Batch, count: int) -> None:
        """InfluxDB refused C{count} of the batch's points for good: forget it, count them."""
        self.drops.rejected += count
        self._settle(batch)

    def spool_stale(self, now: float) -> None:
        """If the oldest line in memory waited C{spool_after}, spool the whole queue, in order."""
        if self._spool is None or not self._queue:
            return
        if self._out is not None:
            return  # its lines are older: wait until it is settled, so order holds
        if now - self._queue[0][0] < self._spool_after:
            return
        self._spool_queue()
        self._end_overflow()

    # -- internals -------------------------------------------------------------

    def _settle(self, batch: Batch) -> None:
        if batch is self._out:
            self._out = None
        if batch.spooled is not None:
            self._commit(batch.spooled)

    def _commit(self, read: SpoolBatch) -> None:
        assert self._spool is not None
        if read.corrupt:
            self.drops.spool_corrupt += read.corrupt
            _log.warn(
                "InfluxDB spool {path}: skipped {n} damaged lines",
                path=self._spool.path,
                n=read.corrupt,
            )
        self._spool.commit(read)

    def _enforce_bound(self) -> None:
        excess = self.queued - self.limit
        if excess <= 0:
            return
        excess = min(excess, len(self._queue))
        for _ in range(excess):
            self._queue.popleft()
        self.drops.overflow += excess
        self._overflow.happened_times(excess, limit=self.limit, url=self._url)

    def _end_overflow(self) -> None:
        if self.queued < self.limit:
            self._overflow.ended()

    def _spool_queue(self) -> bool:
        """Move the whole queue to the spool; False (queue kept) if the file cannot take it."""
        assert self._spool is not None
        lines = [line for _, line in self._queue]
        try:
            dropped = self._spool.append(lines)
        except OSError as e:
            self._spool_problem.happened(path=self._spool.path, error=e)
            return False
        self._spool_problem.ended(path=self._spool.path)
        self._queue.clear()
        if dropped:
            self.drops.spool_overflow += dropped
            self._spool_full.happened_times(
                dropped, path=self._spool.path, limit=self._spool.max_bytes
            )
        return True
