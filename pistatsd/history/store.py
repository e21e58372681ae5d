"""The SQLite file itself: opened, written, pruned and read on the database thread.

Nothing here may run on the reactor thread: every method blocks on disk.  The
service calls it only through the history's one-thread C{ThreadPool}
(L{pistatsd.history.threads.DatabaseThread}).
L{open_store} never gives up on a bad file: a file SQLite cannot open or
that fails its check is moved aside (with its C{-wal} and C{-shm}) as
C{<name>.corrupt-<time>} and a new one is made, so the daemon always starts.

Retention counts buckets, not wall-clock age: each resolution keeps its
newest C{keep / step} distinct buckets, and only a flush that adds a bucket
beyond that count deletes the oldest ones.  A wall clock that jumps forward
by days (a Pi without a real-time clock set by NTP) therefore deletes
nothing at once (the old buckets go one by one as new ones come, exactly as
if time had passed), and one that jumps back deletes nothing either (its
buckets sort before the ones stored earlier, so once the table is full they
are the first to go: what was stored before the jump is kept).

C{--history-max-mb} is a hard bound: SQLite's C{max_page_count} refuses to
grow the file past it, and before that, when the used pages pass 90 % of
it, every resolution loses the same fraction of what it keeps, oldest
buckets first, so the coarse resolutions keep the longest stretch of time.
"""

from __future__ import annotations

import bisect
import math
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence

from attrs import frozen

from pistatsd.history import schema
from pistatsd.history.api import Resolution
from pistatsd.history.buckets import Key, Part

#: Numbers are stored in hundredths, rounded (37.25 % as 3725): SQLite keeps
#: a whole number in a REAL column as a 1 to 6 byte integer instead of an
#: 8 byte float, which makes rows about a third smaller (file size and bytes
#: written alike).  0.01 of a unit (per cent, degree, byte per second, volt)
#: is finer than anything the snapshot measures.
SCALE = 100
#: Seconds of buckets past the retention count that trigger a prune.
PRUNE_EVERY = 3600
#: Used pages past this fraction of the bound start a shrink.
SHRINK_AT = 0.9
#: Each shrink round keeps this fraction of the most any resolution keeps.
SHRINK_TO = 0.9


def _scaled(value: float) -> float:
    """C{value} in hundredths, rounded: see L{SCALE}."""
    scaled = value * SCALE
    return float(round(scaled)) if abs(scaled) < 2**53 else scaled


class CorruptDatabase(sqlite3.DatabaseError):
    """The file opened, but SQLite's check found it damaged."""


@frozen
class FlushResult:
    """What a flush did, for C{/health} and C{/metrics}."""

    rows: int
    size_bytes: int
    oldest: float | None


@frozen
class Opened:
    """A store, and where the file it replaced went (if it had to)."""

    store: HistoryStore
    moved_aside: str | None
    reason: str | None


def _sidecars(path: str) -> list[str]:
    return [path, path + "-wal", path + "-shm"]


def move_aside(path: str, when: float) -> str:
    """Rename C{path} (file or directory) and its C{-wal}/C{-shm} out of the way."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    target = f"{path}.corrupt-{stamp}"
    n = 1
    while os.path.lexists(target):
        n += 1
        target = f"{path}.corrupt-{stamp}-{n}"
    for source, suffix in zip(_sidecars(path), ("", "-wal", "-shm"), strict=True):
        if os.path.lexists(source):
            os.rename(source, target + suffix)
    return target


def open_store(
    path: str,
    max_bytes: int,
    resolutions: tuple[Resolution, ...] = schema.RESOLUTIONS,
    deferred: Mapping[int, int] | None = None,
    wall: Callable[[], float] = time.time,
) -> Opened:
    """Open (or create) the database at C{path}; a bad one is moved aside and replaced.

    @raise OSError: when even a new file cannot be made (e.g. the directory is
        not writable); the caller runs without history then.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        return Opened(HistoryStore(path, max_bytes, resolutions, deferred), None, None)
    except (sqlite3.Error, OSError) as e:
        reason = f"{type(e).__name__}: {e}"
    target = move_aside(path, wall())
    try:
        return Opened(HistoryStore(path, max_bytes, resolutions, deferred), target, reason)
    except sqlite3.Error as e:
        raise OSError(f"cannot create {path}: {e}") from None


class HistoryStore:
    """One connection and what it knows of the file (series ids, buckets per table)."""

    def __init__(
        self,
        path: str,
        max_bytes: int,
        resolutions: tuple[Resolution, ...] = schema.RESOLUTIONS,
        deferred: Mapping[int, int] | None = None,
    ) -> None:
        """
        @param deferred: coarse step to the finer step its open bucket is
            rebuilt from at start-up (see L{pistatsd.history.schema}).
        """
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a directory")
        self.path = path
        self.resolutions = resolutions
        self.max_pages = max(16, max_bytes // schema.PAGE_SIZE)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            schema.configure(self.db)
            check = self.db.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise CorruptDatabase("; ".join(str(row[0]) for row in check[:3]))
            schema.create(self.db, resolutions)
            self.db.execute(f"PRAGMA max_page_count={self.max_pages}")
            self.series: dict[str, int] = dict(self.db.execute("SELECT name, id FROM series"))
            self.buckets: dict[int, list[int]] = {
                r.step: [
                    row[0]
                    for row in self.db.execute(
                        f"SELECT DISTINCT bucket FROM {schema.table(r.step)} ORDER BY bucket"
                    )
                ]
                for r in resolutions
            }
            self._rebuild(deferred or {})
        except BaseException:
            self.db.close()
            raise
        self._keep = {r.step: max(1, r.keep // r.step) for r in resolutions}
        # Pruning waits until about an hour's buckets (at most a tenth of the
        # count) are over the count: one
        # delete of whole pages an hour instead of a few rows at every flush,
        # which would dirty (and write) the head pages of each table each time.
        self._slack = {
            step: max(1, min(PRUNE_EVERY // step, keep // 10)) for step, keep in self._keep.items()
        }

    def _rebuild(self, deferred: Mapping[int, int]) -> None:
        """Recompute the open bucket of each deferred resolution from its source."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'latest'").fetchone()
        if row is None or not deferred:
            return
        (latest,) = row
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for step, source in deferred.items():
                bucket = int(latest // step) * step
                rows = self.buckets.get(source)
                if not rows or rows[0] > bucket or step not in self.buckets:
                    continue  # the source no longer holds all of it
                self.db.execute(f"DELETE FROM {schema.table(step)} WHERE bucket = ?", (bucket,))
                added = self.db.execute(
                    f"INSERT INTO {schema.table(step)} (bucket, series_id, min, sum, max, n) "
                    "SELECT ?, series_id, min(min), sum(sum), max(max), sum(n) "
                    f"FROM {schema.table(source)} WHERE bucket >= ? AND bucket < ? "
                    "GROUP BY series_id",
                    (bucket, bucket, bucket + step),
                ).rowcount
                known = self.buckets[step]
                i = bisect.bisect_left(known, bucket)
                present = i < len(known) and known[i] == bucket
                if added > 0 and not present:
                    known.insert(i, bucket)
                elif added <= 0 and present:
                    del known[i]
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()

    def names(self) -> list[str]:
        return sorted(self.series)

    def oldest(self) -> float | None:
        """The oldest stored bucket of any resolution."""
        firsts = [buckets[0] for buckets in self.buckets.values() if buckets]
        return float(min(firsts)) if firsts else None

    def oldest_by_step(self) -> dict[int, int | None]:
        return {step: (b[0] if b else None) for step, b in self.buckets.items()}

    def size_bytes(self) -> int:
        """The main file's size (the WAL is bounded apart by C{journal_size_limit})."""
        (pages,) = self.db.execute("PRAGMA page_count").fetchone()
        return int(pages) * schema.PAGE_SIZE

    def used_pages(self) -> int:
        (pages,) = self.db.execute("PRAGMA page_count").fetchone()
        (free,) = self.db.execute("PRAGMA freelist_count").fetchone()
        return int(pages) - int(free)

    def write(self, parts: Mapping[Key, Part], latest: float | None = None) -> FlushResult:
        """Write every part in one transaction (combined with stored rows), prune, bound.

        On any error the transaction is rolled back, this object is unchanged
        and the error is raised: the caller keeps the parts for the next try.
        """
        series = dict(self.series)
        buckets = {step: list(b) for step, b in self.buckets.items()}
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self._write(parts, series, buckets)
            except sqlite3.OperationalError:
                if self.size_bytes() // schema.PAGE_SIZE < self.max_pages - 8:
                    raise  # the disk is full, not the bound
                # The bound was hit within this flush: shrink, and try once more.
                self.db.execute("ROLLBACK")
                series = dict(self.series)
                buckets = {step: list(b) for step, b in self.buckets.items()}
                self.db.execute("BEGIN IMMEDIATE")
                self._shrink(buckets, force=True)
                self._write(parts, series, buckets)
            if latest is not None:
                self.db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('latest', ?)", (latest,)
                )
            self._prune(buckets)
            self._shrink(buckets)
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        self.series, self.buckets = series, buckets
        return FlushResult(len(parts), self.size_bytes(), self.oldest())

    def _write(
        self, parts: Mapping[Key, Part], series: dict[str, int], buckets: dict[int, list[int]]
    ) -> None:
        rows: dict[int, list[tuple[int, int, float, float, float, float]]] = {}
        for (step, bucket, name), (lo, total, hi, n) in parts.items():
            sid = series.get(name)
            if sid is None:
                sid = self.db.execute("INSERT INTO series (name) VALUES (?)", (name,)).lastrowid
                assert sid is not None
                series[name] = sid
            rows.setdefault(step, []).append(
                (bucket, sid, _scaled(lo), _scaled(total), _scaled(hi), n)
            )
        for step, batch in rows.items():
            if step not in buckets:
                continue  # a resolution this store does not keep
            self.db.executemany(schema.upsert_sql(step), batch)
            known = buckets[step]
            for bucket in sorted({row[0] for row in batch}):
                i = bisect.bisect_left(known, bucket)
                if i == len(known) or known[i] != bucket:
                    known.insert(i, bucket)

    def _delete_before(self, step: int, buckets: list[int], count: int) -> None:
        """Keep only the newest C{count} buckets of resolution C{step}."""
        if len(buckets) <= count:
            return
        cutoff = buckets[len(buckets) - count] if count > 0 else buckets[-1] + 1
        self.db.execute(f"DELETE FROM {schema.table(step)} WHERE bucket < ?", (cutoff,))
        del buckets[: len(buckets) - count]

    def _prune(self, buckets: dict[int, list[int]]) -> None:
        for step, known in buckets.items():
            if len(known) > self._keep[step] + self._slack[step]:
                self._delete_before(step, known, self._keep[step])

    def _shrink(self, buckets: dict[int, list[int]], force: bool = False) -> None:
        """Under the size bound: the same fraction of C{keep} for every resolution."""
        rounds = 0
        while force or self.used_pages() > SHRINK_AT * self.max_pages:
            force = False
            fraction = max(len(b) / self._keep[step] for step, b in buckets.items())
            if fraction <= 0 or rounds > 200:
                return
            target = fraction * SHRINK_TO
            for step, known in buckets.items():
                self._delete_before(step, known, math.floor(target * self._keep[step]))
            rounds += 1

    def query(
        self, step: int, names: Sequence[str], start: int, end: int, every: int | None = None
    ) -> list[tuple[int, str, float, float, float, int]]:
        """Stored rows of C{names} with C{start <= bucket < end}, merged C{every} seconds
        at a time from C{start}: (bucket, name, min, sum, max, n).

        The merge is SQL's (C{GROUP BY}), so this thread builds at most one
        tuple per output bucket and series, not one per stored row: Python
        holds the GIL while it builds them, and the reactor waits for it.
        Sums are added in hundredths (whole numbers, exact) and divided once.
        """
        ids = {self.series[name]: name for name in names if name in self.series}
        if not ids:
            return []
        every = step if every is None else every
        marks = ",".join("?" * len(ids))
        cursor = self.db.execute(
            "SELECT ? + (bucket - ?) / ? * ?, series_id, min(min), sum(sum), max(max), sum(n) "
            f"FROM {schema.table(step)} "
            f"WHERE bucket >= ? AND bucket < ? AND series_id IN ({marks}) "
            "GROUP BY 1, series_id",
            (start, start, every, every, start, end, *ids),
        )
        return [
            (b, ids[s], lo / SCALE, total / SCALE, hi / SCALE, n)
            for b, s, lo, total, hi, n in cursor
        ]
