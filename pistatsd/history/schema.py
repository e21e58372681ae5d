"""The database layout: one narrow table per resolution, series names apart.

Like L{pistatsd.history.store}, it runs only on the history's one-thread
C{ThreadPool} (L{pistatsd.history.threads.DatabaseThread}), never on the reactor.

Layout, chosen for size and for the SD card:

- C{series(id INTEGER PRIMARY KEY, name TEXT UNIQUE)}: each name once; rows
  carry the small integer instead (one byte for the first 127 series).
- C{points_<step>(slot INTEGER, series_id INTEGER, bucket INTEGER, min REAL,
  sum REAL, max REAL, n INTEGER, PRIMARY KEY (slot, series_id)) WITHOUT
  ROWID}: the primary key is the row, so there is no second B-tree and no
  rowid.  A table has a fixed number of slots (its retention count), handed
  out in a ring (L{pistatsd.history.slots}): a bucket's rows are written in
  the slot it was given, overwriting the rows of the bucket that had it.

The key starts with the slot (not the series) on purpose: every flush
writes the newest buckets of every series, and with the time first they all
land on a few neighbouring pages of each table, instead of one page per
series (40 series = 40 dirty pages per table per flush in WAL, several
hundred MB a day).  Nothing is deleted to make room: the oldest slot is
overwritten in place, so each page is written once per turn of the ring
(a delete of the oldest rows wrote every one of their pages again, a
quarter of the bytes written a day).  A query reads the slot ranges of a
bucket range (one or two runs), checks the stored bucket, and keeps the
series asked for: as the resolution is chosen so that a range holds at most
about C{points} buckets, that is at most C{points} times the number of
series rows.

Version 1 of this layout keyed the rows by C{(bucket, series_id)}; such a
file is converted when opened (L{migrate}), one table at a time.

The coarse resolutions (15 min, 3 h) are written when a bucket closes, not
at every flush: rewriting their open bucket each minute would cost a quarter
of the bytes written.  A kill -9 loses nothing by it: at start-up the open
coarse bucket (the one of C{meta.latest}, the last sample written) is rebuilt
from the 1 min rows, which are written at every flush.

C{sum} and C{n} (not the mean) are stored so that a bucket can be written in
parts and combined on conflict (a bucket still open at a flush, or continued
after a restart): C{min(min)}, C{sum + sum}, C{max(max)}, C{n + n}.

Pages are 1 KiB (not 4): a flush dirties few pages, and each costs its size
in the WAL and again at the checkpoint, so small pages mean fewer bytes
written per day.  Pages freed by pruning stay in the file and are reused:
under C{--history-max-mb} the file grows to the bound and stays there.
"""

from __future__ import annotations

import sqlite3

from pistatsd.history.api import Resolution

DAY = 86400

#: Resolutions kept (SPEC §12), finest first.
RESOLUTIONS: tuple[Resolution, ...] = (
    Resolution(10, DAY),
    Resolution(60, 7 * DAY),
    Resolution(900, 90 * DAY),
    Resolution(3 * 3600, 730 * DAY),
)

PAGE_SIZE = 1024
SCHEMA_VERSION = 2
#: The layout before slots: C{PRIMARY KEY (bucket, series_id)}.
BUCKET_KEYED = 1


def table(step: int) -> str:
    """The table of the resolution with this step."""
    return f"points_{int(step)}"


def configure(db: sqlite3.Connection) -> None:
    """Connection settings: WAL, C{synchronous=NORMAL} (a power cut may lose the
    last commit, never the file), small pages for a new file."""
    db.execute(f"PRAGMA page_size={PAGE_SIZE}")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA wal_autocheckpoint=8000")
    db.execute("PRAGMA journal_size_limit=1048576")


def capacity(resolution: Resolution) -> int:
    """The number of slots (buckets kept) of a resolution's table."""
    return max(1, resolution.keep // resolution.step)


def _create_points(db: sqlite3.Connection, name: str) -> None:
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {name} ("
        "slot INTEGER NOT NULL, series_id INTEGER NOT NULL, bucket INTEGER NOT NULL, "
        "min REAL NOT NULL, sum REAL NOT NULL, max REAL NOT NULL, n INTEGER NOT NULL, "
        "PRIMARY KEY (slot, series_id)) WITHOUT ROWID"
    )


def create(db: sqlite3.Connection, resolutions: tuple[Resolution, ...] = RESOLUTIONS) -> None:
    """Create what is missing (a no-op on an existing database); convert an older
    layout first."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version == BUCKET_KEYED:
        migrate(db, resolutions)
    with db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL) WITHOUT ROWID"
        )
        for resolution in resolutions:
            _create_points(db, table(resolution.step))
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def migrate(db: sqlite3.Connection, resolutions: tuple[Resolution, ...]) -> None:
    """Convert a bucket-keyed file (version 1) to slots, one table per transaction.

    Each table's newest C{capacity} buckets get slots 0, 1, ... oldest first
    (so the ring goes on from the newest); older ones (more than a table
    keeps) are dropped.  One table at a time, so the pages freed by the old
    table are reused by the next new one: the file grows by about its
    largest table, not by its size.  Tables of steps not kept are dropped.
    """
    steps = {r.step: capacity(r) for r in resolutions}
    names = [
        name
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if name.startswith("points_") and name.removeprefix("points_").isdigit()
    ]
    for name in names:
        step = int(name.removeprefix("points_"))
        db.execute("BEGIN IMMEDIATE")
        try:
            if step in steps:
                old = f"{name}_v1"
                db.execute(f"ALTER TABLE {name} RENAME TO {old}")
                _create_points(db, name)
                db.execute(
                    f"INSERT INTO {name} (slot, series_id, bucket, min, sum, max, n) "
                    "WITH kept AS (SELECT bucket, row_number() OVER (ORDER BY bucket DESC) AS r "
                    f"FROM (SELECT DISTINCT bucket FROM {old})), "
                    "total AS (SELECT min(count(*), ?) AS k FROM kept) "
                    "SELECT total.k - kept.r, p.series_id, p.bucket, p.min, p.sum, p.max, p.n "
                    f"FROM {old} p JOIN kept USING (bucket), total WHERE kept.r <= total.k "
                    "ORDER BY 1, 2",
                    (steps[step],),
                )
                db.execute(f"DROP TABLE {old}")
            else:
                db.execute(f"DROP TABLE {name}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    # Until here the file says version 1: a conversion cut short starts again
    # at the next open (converting a table twice gives the same slots).
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def upsert_sql(step: int) -> str:
    """Write one bucket's part into its slot: combined with what is stored when the
    slot holds that bucket already, replacing it when it held an older one."""
    same = "bucket = excluded.bucket"
    return (
        f"INSERT INTO {table(step)} (slot, series_id, bucket, min, sum, max, n) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (slot, series_id) DO UPDATE SET "
        "bucket = excluded.bucket, "
        f"min = CASE WHEN {same} THEN min(min, excluded.min) ELSE excluded.min END, "
        f"sum = CASE WHEN {same} THEN sum + excluded.sum ELSE excluded.sum END, "
        f"max = CASE WHEN {same} THEN max(max, excluded.max) ELSE excluded.max END, "
        f"n = CASE WHEN {same} THEN n + excluded.n ELSE excluded.n END"
    )
