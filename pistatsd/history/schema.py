"""The database layout: one narrow table per resolution, series names apart.

Like L{pistatsd.history.store}, it runs only on the history's one-thread
C{ThreadPool} (L{pistatsd.history.threads.DatabaseThread}), never on the reactor.

Layout, chosen for size and for the SD card:

- C{series(id INTEGER PRIMARY KEY, name TEXT UNIQUE)}: each name once; rows
  carry the small integer instead (one byte for the first 127 series).
- C{points_<step>(bucket INTEGER, series_id INTEGER, min REAL, sum REAL,
  max REAL, n INTEGER, PRIMARY KEY (bucket, series_id)) WITHOUT ROWID}: the
  primary key is the row, so there is no second B-tree and no rowid.

The key starts with the bucket (not the series) on purpose: every flush
writes the newest buckets of every series, and with the time first they all
land on the last few pages of each table, instead of one page per series
(40 series = 40 dirty pages per table per flush in WAL, several hundred MB a
day).  Pruning the oldest buckets is a range delete at the head of the table.
A query reads a bucket range and keeps the series asked for: as the
resolution is chosen so that a range holds at most about C{points} buckets,
that is at most C{points} times the number of series rows.

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
SCHEMA_VERSION = 1


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


def create(db: sqlite3.Connection, resolutions: tuple[Resolution, ...] = RESOLUTIONS) -> None:
    """Create what is missing (a no-op on an existing database)."""
    with db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL) WITHOUT ROWID"
        )
        for resolution in resolutions:
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {table(resolution.step)} ("
                "bucket INTEGER NOT NULL, series_id INTEGER NOT NULL, "
                "min REAL NOT NULL, sum REAL NOT NULL, max REAL NOT NULL, n INTEGER NOT NULL, "
                "PRIMARY KEY (bucket, series_id)) WITHOUT ROWID"
            )
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def upsert_sql(step: int) -> str:
    """Insert one bucket's part, combining it with what is already stored."""
    return (
        f"INSERT INTO {table(step)} (bucket, series_id, min, sum, max, n) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bucket, series_id) DO UPDATE SET "
        "min = min(min, excluded.min), sum = sum + excluded.sum, "
        "max = max(max, excluded.max), n = n + excluded.n"
    )
