"""The alert change log in the history database: its own table, written on the history's thread.

The table (C{alert_changes}) lives in the history file beside the series
tables and is created when missing; it keeps the newest L{KEEP} changes
(older rows are deleted in the same transaction as each write).  Every
call runs on the history's one database thread
(L{pistatsd.history.service.HistoryService.run_on_database}); rows read
back are checked one by one, and a bad one (a damaged file, a hand edit)
is skipped rather than failing the load.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from pistatsd.alerts.events import SEVERITIES, AlertChange, Severity, State
from pistatsd.history.service import HistoryService

if TYPE_CHECKING:
    # Types only: every sqlite3 call runs on the history's database thread
    # (L{pistatsd.history.threads.DatabaseThread}), never on the reactor.
    import sqlite3

TABLE = "alert_changes"
#: Changes kept in the table (and loaded back at start).
KEEP = 1000
_STATES: dict[object, State] = {"ok": "ok", "pending": "pending", "firing": "firing"}
_SEVERITIES: dict[object, Severity] = {severity: severity for severity in SEVERITIES}

_CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    series TEXT NOT NULL,
    state TEXT NOT NULL,
    previous TEXT NOT NULL,
    time REAL NOT NULL,
    value REAL,
    severity TEXT NOT NULL
)
"""

Row = tuple[object, object, object, object, object, object, object]


def _row(change: AlertChange) -> Row:
    return (
        change.name,
        change.series,
        change.state,
        change.previous,
        change.time,
        change.value,
        change.severity,
    )


def change_of(row: Sequence[object]) -> AlertChange | None:
    """The change a row holds, or None for a row that is not a valid change."""
    if len(row) != 7:
        return None
    name, series, state, previous, when, value, severity = row
    if not (isinstance(name, str) and name and isinstance(series, str)):
        return None
    checked_state, checked_previous = _STATES.get(state), _STATES.get(previous)
    checked_severity = _SEVERITIES.get(severity)
    if checked_state is None or checked_previous is None or checked_severity is None:
        return None
    if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        return None
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        return None
    return AlertChange(
        name=name,
        series=series,
        state=checked_state,
        previous=checked_previous,
        time=float(when),
        value=None if value is None else float(value),
        severity=checked_severity,
    )


def write(db: sqlite3.Connection, rows: Sequence[Row], keep: int = KEEP) -> None:
    """Database thread: add C{rows} and keep the newest C{keep}, in one transaction."""
    db.execute(_CREATE)
    db.execute("BEGIN")
    try:
        db.executemany(
            f"INSERT INTO {TABLE} (name, series, state, previous, time, value, severity) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute(f"DELETE FROM {TABLE} WHERE id <= (SELECT MAX(id) FROM {TABLE}) - ?", (keep,))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def read(db: sqlite3.Connection, limit: int = KEEP) -> tuple[list[AlertChange], int]:
    """Database thread: the newest C{limit} valid changes, oldest first, and how many
    rows were skipped as invalid."""
    db.execute(_CREATE)
    rows = db.execute(
        f"SELECT name, series, state, previous, time, value, severity FROM {TABLE} "
        "ORDER BY id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    changes = [change for change in map(change_of, rows) if change is not None]
    changes.reverse()
    return changes, len(rows) - len(changes)


class AlertLogTable:
    """The alert log's persistence (L{pistatsd.alerts.changelog.ChangeStore}) in the history."""

    def __init__(self, history: HistoryService, keep: int = KEEP) -> None:
        self._history = history
        self._keep = keep

    def save(self, changes: Sequence[AlertChange]) -> Deferred[None]:
        """Write C{changes} (one transaction) on the database thread."""
        rows = [_row(change) for change in changes]
        return self._history.run_on_database(lambda db: write(db, rows, self._keep))

    def load(self) -> Deferred[tuple[list[AlertChange], int]]:
        """The kept changes, oldest first, and the number of bad rows skipped."""
        return self._history.run_on_database(lambda db: read(db, self._keep))
