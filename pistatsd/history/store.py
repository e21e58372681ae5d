"""The SQLite file itself: opened, written, pruned and read on the database thread.

Nothing here may run on the reactor thread: every method blocks on disk.  The
service calls it only through the history's one-thread C{ThreadPool}
(L{pistatsd.history.threads.DatabaseThread}).
L{open_store} never gives up on a bad file: a file SQLite cannot open or
that fails its check is moved aside (with its C{-wal} and C{-shm}) as
C{<name>.corrupt-<time>} and a new one is made, so the daemon always starts.

Retention counts buckets, not wall-clock age: each resolution's table has
C{keep / step} slots, and a new bucket beyond that count overwrites the
oldest one's rows in place (L{pistatsd.history.slots}).  A wall clock that
jumps forward by days (a Pi without a real-time clock set by NTP) therefore
deletes nothing at once (the old buckets go one by one as new ones come,
exactly as if time had passed), and one that jumps back deletes nothing
either (its buckets fill free slots; once the table is full, a bucket older
than every stored one is not kept: what was stored before the jump is).

C{--history-max-mb} is a hard bound: SQLite's C{max_page_count} refuses to
grow the file past it, and before that, when the used pages pass 90 % of
it, every resolution loses the same fraction of what it keeps, oldest
buckets first, so the coarse resolutions keep the longest stretch of time.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence

from attrs import frozen

from pistatsd.history import schema
from pistatsd.history.api import Resolution
from pistatsd.history.buckets import Key, Part
from pistatsd.history.slots import Slots

#: Numbers are stored in hundredths, rounded (37.25 % as 3725): SQLite keeps
#: a whole number in a REAL column as a 1 to 6 byte integer instead of an
#: 8 byte float, which makes rows about a third smaller (file size and bytes
#: written alike).  0.01 of a unit (per cent, degree, byte per second, volt)
#: is finer than anything the snapshot measures.
SCALE = 100
#: Slot runs a query names; beyond, it reads the whole table (checking buckets).
MAX_RUNS = 16
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

    A full disk is not a bad file: it is not moved aside (converting an
    older layout needs room for one table), the caller runs without history
    until the next start.

    @raise OSError: when even a new file cannot be made (e.g. the directory is
        not writable), or the disk is full; the caller runs without history then.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        return Opened(HistoryStore(path, max_bytes, resolutions, deferred), None, None)
    except sqlite3.OperationalError as e:
        if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            raise OSError(f"cannot open {path}: the disk is full ({e})") from None
        reason = f"{type(e).__name__}: {e}"
    except (sqlite3.Error, OSError) as e:
        reason = f"{type(e).__name__}: {e}"
    target = move_aside(path, wall())
    try:
        return Opened(HistoryStore(path, max_bytes, resolutions, deferred), target, reason)
    except sqlite3.Error as e:
        raise OSError(f"cannot create {path}: {e}") from None


class HistoryStore:
    """One connection and what it knows of the file (series ids, slots per table)."""

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
            (pages,) = self.db.execute("PRAGMA page_count").fetchone()
            if pages > self.max_pages:
                # Only a conversion of an old file (or a smaller bound) gets here.
                # Without room for the copy VACUUM makes, the shrink at each
                # write still keeps the used pages under the bound.
                with contextlib.suppress(sqlite3.OperationalError):
                    self.db.execute("VACUUM")
            self.db.execute(f"PRAGMA max_page_count={self.max_pages}")
            self.series: dict[str, int] = dict(self.db.execute("SELECT name, id FROM series"))
            self.slots: dict[int, Slots] = {r.step: self._load(r) for r in resolutions}
            self._rebuild(deferred or {})
        except BaseException:
            self.db.close()
            raise
        self._keep = {r.step: schema.capacity(r) for r in resolutions}

    def _load(self, resolution: Resolution) -> Slots:
        """The slot map of one table, as stored.

        Every row of a slot has the slot's bucket (a write that gives a slot to
        a new bucket removes the rows it does not overwrite); should a file say
        otherwise, the newest bucket keeps the slot and the other rows go, so
        that no query can read them.  Slots beyond the count (a shorter
        retention than when they were written) go too.
        """
        name = schema.table(resolution.step)
        rows = self.db.execute(
            f"SELECT slot, min(bucket), max(bucket) FROM {name} GROUP BY slot"
        ).fetchall()
        slots = Slots(schema.capacity(resolution), ((slot, hi) for slot, _, hi in rows))
        mixed = [(slot, hi) for slot, lo, hi in rows if lo != hi and slots.slot(hi) == slot]
        self.db.executemany(f"DELETE FROM {name} WHERE slot = ? AND bucket <> ?", mixed)
        self.db.executemany(f"DELETE FROM {name} WHERE slot = ?", [(s,) for s in slots.stray])
        return slots

    def _where(self, step: int, start: int, end: int) -> tuple[str, tuple[int, ...]] | None:
        """The C{WHERE} clause reading buckets C{[start, end)} of a table: the slot
        runs that hold them, and the stored bucket checked; C{None} when none is stored."""
        runs = self.slots[step].ranges(start, end)
        if not runs:
            return None
        if len(runs) > MAX_RUNS:
            return "bucket >= ? AND bucket < ?", (start, end)
        ors = " OR ".join(["slot BETWEEN ? AND ?"] * len(runs))
        flat = tuple(x for run in runs for x in run)
        return f"({ors}) AND bucket >= ? AND bucket < ?", (*flat, start, end)

    def _rebuild(self, deferred: Mapping[int, int]) -> None:
        """Recompute the open bucket of each deferred resolution from its source."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'latest'").fetchone()
        if row is None or not deferred:
            return
        (latest,) = row
        self.db.execute("BEGIN IMMEDIATE")
        for slots in self.slots.values():
            slots.begin()
        try:
            for step, source in deferred.items():
                bucket = int(latest // step) * step
                rows = self.slots.get(source)
                if rows is None or not rows.buckets or rows.buckets[0] > bucket:
                    continue  # the source no longer holds all of it
                if step not in self.slots:
                    continue
                slots = self.slots[step]
                where = self._where(source, bucket, bucket + step)
                placed = slots.place(bucket) if where is not None else None
                old = slots.slot(bucket) if placed is None else placed[0]
                if old is not None:
                    self.db.execute(f"DELETE FROM {schema.table(step)} WHERE slot = ?", (old,))
                if placed is None or where is None:
                    slots.remove(bucket)
                    continue
                slot, _ = placed
                clause, args = where
                added = self.db.execute(
                    f"INSERT INTO {schema.table(step)} "
                    "(slot, series_id, bucket, min, sum, max, n) "
                    "SELECT ?, series_id, ?, min(min), sum(sum), max(max), sum(n) "
                    f"FROM {schema.table(source)} WHERE {clause} GROUP BY series_id",
                    (slot, bucket, *args),
                ).rowcount
                if added <= 0:
                    slots.remove(bucket)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            for slots in self.slots.values():
                slots.rollback()
            raise
        for slots in self.slots.values():
            slots.commit()

    def close(self) -> None:
        self.db.close()

    def names(self) -> list[str]:
        return sorted(self.series)

    def oldest(self) -> float | None:
        """The oldest stored bucket of any resolution."""
        firsts = [slots.buckets[0] for slots in self.slots.values() if slots.buckets]
        return float(min(firsts)) if firsts else None

    def oldest_by_step(self) -> dict[int, int | None]:
        return {step: (s.buckets[0] if s.buckets else None) for step, s in self.slots.items()}

    def size_bytes(self) -> int:
        """The main file's size (the WAL is bounded apart by C{journal_size_limit})."""
        (pages,) = self.db.execute("PRAGMA page_count").fetchone()
        return int(pages) * schema.PAGE_SIZE

    def used_pages(self) -> int:
        (pages,) = self.db.execute("PRAGMA page_count").fetchone()
        (free,) = self.db.execute("PRAGMA freelist_count").fetchone()
        return int(pages) - int(free)

    def write(self, parts: Mapping[Key, Part], latest: float | None = None) -> FlushResult:
        """Write every part in one transaction (combined with stored rows), bound.

        On any error the transaction is rolled back, this object is unchanged
        and the error is raised: the caller keeps the parts for the next try.
        """
        series = dict(self.series)
        for slots in self.slots.values():
            slots.begin()
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self._write(parts, series)
            except sqlite3.OperationalError:
                if self.size_bytes() // schema.PAGE_SIZE < self.max_pages - 8:
                    raise  # the disk is full, not the bound
                # The bound was hit within this flush: shrink, and try once more.
                self.db.execute("ROLLBACK")
                for slots in self.slots.values():
                    slots.rollback()
                    slots.begin()
                series = dict(self.series)
                self.db.execute("BEGIN IMMEDIATE")
                self._shrink(force=True)
                self._write(parts, series)
            if latest is not None:
                self.db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('latest', ?)", (latest,)
                )
            self._shrink()
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            for slots in self.slots.values():
                slots.rollback()
            raise
        for slots in self.slots.values():
            slots.commit()
        self.series = series
        return FlushResult(len(parts), self.size_bytes(), self.oldest())

    def _write(self, parts: Mapping[Key, Part], series: dict[str, int]) -> None:
        rows: dict[int, dict[int, list[tuple[int, float, float, float, float]]]] = {}
        for (step, bucket, name), (lo, total, hi, n) in parts.items():
            if step not in self.slots:
                continue  # a resolution this store does not keep
            sid = series.get(name)
            if sid is None:
                sid = self.db.execute("INSERT INTO series (name) VALUES (?)", (name,)).lastrowid
                assert sid is not None
                series[name] = sid
            rows.setdefault(step, {}).setdefault(bucket, []).append(
                (sid, _scaled(lo), _scaled(total), _scaled(hi), n)
            )
        for step, by_bucket in rows.items():
            slots = self.slots[step]
            batch: list[tuple[int, int, int, float, float, float, float]] = []
            taken: dict[int, int] = {}
            for bucket in sorted(by_bucket):
                new = slots.slot(bucket) is None
                placed = slots.place(bucket)
                if placed is None:
                    continue  # older than every bucket of a full table
                slot, _ = placed
                if new:
                    taken[slot] = bucket  # the last bucket given a slot keeps it
                for sid, lo, total, hi, n in by_bucket[bucket]:
                    batch.append((slot, sid, bucket, lo, total, hi, n))
            self.db.executemany(schema.upsert_sql(step), batch)
            # Rows of the bucket that had the slot that this one did not
            # overwrite (a series without a sample in it) must not stay.
            self.db.executemany(
                f"DELETE FROM {schema.table(step)} WHERE slot = ? AND bucket <> ?",
                list(taken.items()),
            )

    def _delete_before(self, step: int, count: int) -> None:
        """Keep only the newest C{count} buckets of resolution C{step}."""
        slots = self.slots[step]
        if len(slots) <= count:
            return
        known = slots.buckets
        cutoff = known[len(known) - count] if count > 0 else known[-1] + 1
        where = self._where(step, known[0], cutoff)
        if where is not None:
            clause, args = where
            self.db.execute(f"DELETE FROM {schema.table(step)} WHERE {clause}", args)
        slots.remove_before(cutoff)

    def _shrink(self, force: bool = False) -> None:
        """Under the size bound: the same fraction of C{keep} for every resolution."""
        rounds = 0
        while force or self.used_pages() > SHRINK_AT * self.max_pages:
            force = False
            fraction = max(len(s) / self._keep[step] for step, s in self.slots.items())
            if fraction <= 0 or rounds > 200:
                return
            target = fraction * SHRINK_TO
            for step in self.slots:
                self._delete_before(step, math.floor(target * self._keep[step]))
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
        where = self._where(step, start, end) if step in self.slots else None
        if not ids or where is None:
            return []
        clause, args = where
        every = step if every is None else every
        marks = ",".join("?" * len(ids))
        cursor = self.db.execute(
            "SELECT ? + (bucket - ?) / ? * ?, series_id, min(min), sum(sum), max(max), sum(n) "
            f"FROM {schema.table(step)} WHERE {clause} AND series_id IN ({marks}) "
            "GROUP BY 1, series_id",
            (start, start, every, every, *args, *ids),
        )
        return [
            (b, ids[s], lo / SCALE, total / SCALE, hi / SCALE, n)
            for b, s, lo, total, hi, n in cursor
        ]
