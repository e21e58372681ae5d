"""The durable history (SPEC §12) on a fake clock with a real SQLite file:
roll-ups, flushing, restarts, resolutions, retention, the size bound, faults."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.history import schema, store
from pistatsd.history.api import HistoryBusy, SeriesData
from pistatsd.history.metrics import HistoryCollector
from pistatsd.history.service import HistoryService
from pistatsd.history.threads import InlineWorker
from pistatsd.status import HISTORY_OFF

T0 = 1_799_992_800.0  # a multiple of every step
DAY = 86400


class Logged:
    """Log events of level warn and above, for the duration of a test."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self._observe)
        case.addCleanup(globalLogPublisher.removeObserver, self._observe)

    def _observe(self, event: dict[str, Any]) -> None:
        serious = event.get("log_level") in (LogLevel.warn, LogLevel.error, LogLevel.critical)
        if serious and str(event.get("log_namespace", "")).startswith("pistatsd.history"):
            self.events.append(event)

    def count(self, text: str) -> int:
        return sum(text in event["log_format"] for event in self.events)


def snapshot(t: float, cpu: float | None, **more: float) -> dict[str, Any]:
    return {"timestamp": t, "cpu": {"percent": cpu}, "memory": {"percent": more.get("mem", 1.0)}}


class Harness:
    """A service on a L{Clock} writing inline to a real file."""

    def __init__(self, case: SynchronousTestCase, path: str, **kwargs: Any) -> None:
        self.clock = Clock()
        kwargs.setdefault("flush_interval", 60.0)
        self.service = HistoryService(path, clock=self.clock, worker=InlineWorker(), **kwargs)
        self.service.startService()
        self._case = case
        case.addCleanup(self.stop)

    def stop(self) -> None:
        if self.service.running:
            self._case.successResultOf(self.service.stopService())

    def query(self, names: list[str], start: float, end: float, points: int = 600) -> SeriesData:
        return self._case.successResultOf(self.service.query(names, start, end, points))


def stored_rows(path: str, step: int) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            f"SELECT s.name, p.bucket, p.min, p.sum, p.max, p.n FROM {schema.table(step)} p "
            "JOIN series s ON s.id = p.series_id ORDER BY p.bucket, s.name"
        ).fetchall()
    finally:
        db.close()
    return [
        (name, b, lo / store.SCALE, t / store.SCALE, hi / store.SCALE, n)
        for name, b, lo, t, hi, n in rows
    ]


class RollupTests(SynchronousTestCase):
    def setUp(self) -> None:
        os.makedirs(self.mktemp())
        self.path = os.path.join(self.mktemp(), "history.sqlite3")

    def test_min_mean_max_per_bucket_and_resolution(self) -> None:
        h = Harness(self, self.path)
        for i, cpu in enumerate([10.0, 20.0, 30.0, 40.0]):
            h.service.record(snapshot(T0 + 5 * i, cpu))  # buckets T0 and T0+10
        h.clock.advance(60)
        self.assertEqual(
            [r for r in stored_rows(self.path, 10) if r[0] == "cpu.percent"],
            [
                ("cpu.percent", T0, 10.0, 30.0, 20.0, 2),
                ("cpu.percent", T0 + 10, 30.0, 70.0, 40.0, 2),
            ],
        )
        rows = [r for r in stored_rows(self.path, 60) if r[0] == "cpu.percent"]
        self.assertEqual(rows, [("cpu.percent", T0, 10.0, 100.0, 40.0, 4)])
        # The open 15 min and 3 h buckets are written when they close, or
        # rebuilt from the 1 min rows at the next start.
        self.assertEqual(stored_rows(self.path, 900), [])
        self.assertEqual(stored_rows(self.path, 10800), [])
        coarse = h.query(["cpu.percent"], T0, T0 + 900, points=1)
        self.assertEqual(coarse.step, 900)
        self.assertEqual(
            coarse.values["cpu.percent"], {"min": [10.0], "avg": [25.0], "max": [40.0]}
        )
        answer = h.query(["cpu.percent"], T0, T0 + 20, points=2)
        self.assertEqual(answer.step, 10)
        self.assertEqual(answer.t, [T0, T0 + 10])
        self.assertEqual(
            answer.values["cpu.percent"],
            {"min": [10.0, 30.0], "avg": [15.0, 35.0], "max": [20.0, 40.0]},
        )

    def test_stored_in_hundredths_and_huge_numbers_kept(self) -> None:
        h = Harness(self, self.path)
        h.service.record(
            {"timestamp": T0, "cpu": {"percent": 12.3456}, "memory": {"available": 1e300}}
        )
        h.clock.advance(60)
        again = Harness(self, self.path)
        cpu = again.query(["cpu.percent"], T0, T0 + 10).values["cpu.percent"]
        self.assertEqual(cpu, {"min": [12.35], "avg": [12.35], "max": [12.35]})
        available = again.query(["memory.available"], T0, T0 + 10).values["memory.available"]
        self.assertEqual(available["max"], [1e300])

    def test_nothing_is_written_before_the_flush_interval(self) -> None:
        h = Harness(self, self.path)
        h.service.record(snapshot(T0, 1.0))
        h.clock.advance(59)
        self.assertEqual(stored_rows(self.path, 10), [])
        self.assertEqual(h.service.state()["pending_rows"], 8)  # 2 series x 4 resolutions
        h.clock.advance(1)
        self.assertEqual(len(stored_rows(self.path, 10)), 2)
        self.assertEqual(h.service.state()["pending_rows"], 4)  # the open 15 min and 3 h ones

    def test_unflushed_rows_are_in_the_answer(self) -> None:
        h = Harness(self, self.path)
        h.service.record(snapshot(T0, 1.0))
        h.clock.advance(60)
        h.service.record(snapshot(T0 + 3, 3.0))  # same bucket, not yet written
        answer = h.query(["cpu.percent"], T0, T0 + 10)
        self.assertEqual(answer.values["cpu.percent"], {"min": [1.0], "avg": [2.0], "max": [3.0]})

    def test_open_bucket_continues_across_flushes_and_restarts(self) -> None:
        h = Harness(self, self.path)
        h.service.record(snapshot(T0, 1.0))
        h.clock.advance(60)
        h.service.record(snapshot(T0 + 1, 5.0))
        h.stop()  # the shutdown flush
        again = Harness(self, self.path)
        again.service.record(snapshot(T0 + 2, 3.0))
        again.clock.advance(60)
        rows = [r for r in stored_rows(self.path, 60) if r[0] == "cpu.percent"]
        self.assertEqual(rows, [("cpu.percent", T0, 1.0, 9.0, 5.0, 3)])
        self.assertEqual(
            self.successResultOf(again.service.names()), ["cpu.percent", "memory.percent"]
        )
        self.assertEqual(self.successResultOf(again.service.oldest()), T0)

    def test_open_coarse_bucket_rebuilt_after_a_crash(self) -> None:
        h = Harness(self, self.path)
        for i in range(3):
            h.service.record(snapshot(T0 + 60 * i, float(i + 1)))
            h.clock.advance(60)
        # A kill -9: the connection goes without the shutdown flush.
        h.service._store.close()
        h.service.running = False
        again = Harness(self, self.path)
        rows = [r for r in stored_rows(self.path, 900) if r[0] == "cpu.percent"]
        self.assertEqual(rows, [("cpu.percent", T0, 1.0, 6.0, 3.0, 3)])
        again.service.record(snapshot(T0 + 600, 10.0))
        again.service.record(snapshot(T0 + 900, 20.0))  # closes the 15 min bucket
        again.clock.advance(60)
        rows = [r for r in stored_rows(self.path, 900) if r[0] == "cpu.percent"]
        self.assertEqual(rows, [("cpu.percent", T0, 1.0, 16.0, 10.0, 4)])
        again.stop()
        third = Harness(self, self.path)
        answer = third.query(["cpu.percent"], T0, T0 + 3 * 3600, points=1)
        self.assertEqual(answer.step, 10800)
        self.assertEqual(
            answer.values["cpu.percent"], {"min": [1.0], "avg": [36 / 5], "max": [20.0]}
        )

    def test_null_samples_and_bad_timestamps_are_skipped(self) -> None:
        h = Harness(self, self.path)
        h.service.record(snapshot(T0, None))
        h.service.record({"timestamp": "x", "cpu": {"percent": 5.0}})
        h.service.record({"timestamp": float("nan"), "cpu": {"percent": 5.0}})
        h.service.record({"cpu": {"percent": 5.0}})
        h.clock.advance(60)
        self.assertEqual([r[0] for r in stored_rows(self.path, 10)], ["memory.percent"])

    def test_unknown_names_fail_with_key_error(self) -> None:
        h = Harness(self, self.path)
        h.service.record(snapshot(T0, 1.0))
        failure = self.failureResultOf(h.service.query(["cpu.percent", "nope"], T0, T0 + 60, 10))
        failure.trap(KeyError)

    def test_null_where_no_data(self) -> None:
        h = Harness(self, self.path)
        h.service.record(snapshot(T0, 1.0))
        h.service.record(snapshot(T0 + 20, 2.0))
        h.clock.advance(60)
        answer = h.query(["cpu.percent"], T0, T0 + 30, points=3)
        self.assertEqual(answer.values["cpu.percent"]["avg"], [1.0, None, 2.0])


class HeldWorker:
    """Runs each call only when the test says so, like a busy database thread."""

    def __init__(self) -> None:
        self.held: list[tuple[Deferred[Any], Callable[..., Any], tuple[object, ...]]] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def run(self, f: Callable[..., Any], *args: object) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.held.append((d, f, args))
        return d

    def release(self) -> None:
        """Run everything held so far, in order."""
        held, self.held = self.held, []
        for d, f, args in held:
            d.callback(f(*args))


class QueryTests(SynchronousTestCase):
    def setUp(self) -> None:
        os.makedirs(self.mktemp())
        self.path = os.path.join(self.mktemp(), "h.sqlite3")

    def test_store_merges_in_sql_one_row_per_point_and_series(self) -> None:
        """30 days of 15 min rows at 1000 points: the store hands over one row per
        output bucket and series (merged by SQL), not the 2880 stored rows each."""
        h = Harness(self, self.path)
        for i in range(30 * 96):
            h.service.record(snapshot(T0 + 900 * i, float(i % 7), mem=0.25 * (i % 5)))
        h.clock.advance(60)
        start, end = int(T0), int(T0 + 30 * DAY)
        h.service.flush()
        db = h.service._store
        assert db is not None
        resolution = h.service.choose(start, end, 1000)
        step = h.service.output_step(resolution, start, end, 1000)
        self.assertEqual((resolution.step, step), (900, 2700))
        rows = db.query(900, ["cpu.percent", "memory.percent"], start, end, step)
        self.assertEqual(len(rows), 2 * 960)
        first = [r for r in rows if r[0] == start]
        self.assertEqual(
            sorted(first),
            [
                (start, "cpu.percent", 0.0, 3.0, 2.0, 3),
                (start, "memory.percent", 0.0, 0.75, 0.5, 3),
            ],
        )
        answer = h.query(["cpu.percent"], start, end, 1000)
        self.assertEqual(answer.step, 2700)
        self.assertEqual(answer.values["cpu.percent"]["avg"][:3], [1.0, 4.0, 7 / 3])
        self.assertEqual(answer.values["cpu.percent"]["max"][:3], [2.0, 5.0, 6.0])

    def test_queries_over_the_cap_are_refused_and_logged_once(self) -> None:
        logged = Logged(self)
        worker = HeldWorker()
        service = HistoryService(
            self.path, clock=Clock(), worker=worker, max_queries=2, flush_interval=60.0
        )
        service.startService()
        worker.release()  # the open
        service.record(snapshot(T0, 5.0))
        waiting = [service.query(["cpu.percent"], T0, T0 + 60, 6) for _ in range(2)]
        refused = [service.query(["cpu.percent"], T0, T0 + 60, 6) for _ in range(3)]
        for d in refused:
            self.failureResultOf(d, HistoryBusy)
        self.assertEqual(service.state()["queries_running"], 2)
        self.assertEqual(service.state()["queries_refused"], 3)
        self.assertEqual(logged.count("queries already waiting"), 1)
        worker.release()
        for d in waiting:
            self.assertEqual(self.successResultOf(d).values["cpu.percent"]["avg"][0], 5.0)
        self.assertEqual(service.state()["queries_running"], 0)
        again = service.query(["cpu.percent"], T0, T0 + 60, 6)
        worker.release()
        self.successResultOf(again)
        later = [service.query(["cpu.percent"], T0, T0 + 60, 6) for _ in range(3)]
        self.failureResultOf(later[2], HistoryBusy)
        self.assertEqual(logged.count("queries already waiting"), 2)  # a new episode
        worker.release()
        self.successResultOf(later[0])
        stopped = service.stopService()
        while worker.held:
            worker.release()
        self.successResultOf(stopped)


class ResolutionTests(SynchronousTestCase):
    def setUp(self) -> None:
        os.makedirs(self.mktemp())
        self.h = Harness(self, os.path.join(self.mktemp(), "h.sqlite3"))
        # Samples every 10 minutes over 3 days, then every 10 s for the last hour.
        t = T0 - 3 * DAY
        while t < T0 - 3600:
            self.h.service.record(snapshot(t, 1.0))
            t += 600
        while t < T0:
            self.h.service.record(snapshot(t, 2.0))
            t += 10
        self.h.clock.advance(60)

    def test_finest_within_points(self) -> None:
        service = self.h.service
        self.assertEqual(service.choose(T0 - 3600, T0, 600).step, 10)
        self.assertEqual(service.choose(T0 - 3600, T0, 60).step, 60)
        self.assertEqual(service.choose(T0 - 2 * DAY, T0, 600).step, 60)
        self.assertEqual(service.choose(T0 - 2 * DAY, T0, 5).step, 10800)

    def test_answer_has_at_most_points(self) -> None:
        answer = self.h.query(["cpu.percent"], T0 - 6 * 3600, T0, points=100)
        self.assertLessEqual(len(answer.t), 100 + 1)
        # 216 s per point wanted: the 1 min rows, four to a point (not 24 points of 15 min).
        self.assertEqual(answer.step, 240)
        self.assertGreater(len(answer.t), 80)
        self.assertEqual(answer.t[0], T0 - 6 * 3600)
        self.assertEqual(answer.values["cpu.percent"]["avg"][-1], 2.0)

    def test_output_step_is_whole_source_steps(self) -> None:
        minute, quarter = self.h.service.resolutions[1], self.h.service.resolutions[2]
        self.assertEqual(self.h.service.output_step(minute, 0, 7 * DAY, 600), 1020)
        self.assertEqual(self.h.service.output_step(quarter, 0, 7 * DAY, 600), 1800)
        self.assertEqual(self.h.service.output_step(quarter, 0, 7 * DAY, 700), 900)

    def test_store_serves_everything_it_announces(self) -> None:
        service = self.h.service
        self.assertEqual(
            [(r.step, r.keep) for r in service.resolutions][:4],
            [(10, DAY), (60, 7 * DAY), (900, 90 * DAY), (10800, 730 * DAY)],
        )


class RetentionTests(SynchronousTestCase):
    """Pruning counts buckets, so wall-clock jumps never delete what was stored."""

    def setUp(self) -> None:
        os.makedirs(self.mktemp())
        self.path = os.path.join(self.mktemp(), "h.sqlite3")

    def test_old_buckets_go_once_the_resolution_is_full(self) -> None:
        small = (schema.Resolution(10, 100), schema.Resolution(60, 600))
        h = Harness(self, self.path, resolutions=small)
        for i in range(30):
            h.service.record(snapshot(T0 + 10 * i, float(i)))
        h.clock.advance(60)
        buckets = sorted({r[1] for r in stored_rows(self.path, 10)})
        self.assertEqual(buckets, [T0 + 10 * i for i in range(20, 30)])
        self.assertEqual(len({r[1] for r in stored_rows(self.path, 60)}), 5)

    def test_clock_jumping_forward_by_days_keeps_what_was_stored(self) -> None:
        h = Harness(self, self.path)
        for i in range(100):
            h.service.record(snapshot(T0 + 10 * i, 1.0))
        h.clock.advance(60)
        for i in range(100):
            h.service.record(snapshot(T0 + 5 * DAY + 10 * i, 2.0))
        h.clock.advance(60)
        before = h.query(["cpu.percent"], T0, T0 + 1000, points=100)
        self.assertEqual(before.step, 10)
        self.assertEqual(before.values["cpu.percent"]["avg"], [1.0] * 100)

    def test_clock_jumping_back_by_days_keeps_what_was_stored(self) -> None:
        h = Harness(self, self.path)
        for i in range(100):
            h.service.record(snapshot(T0 + 10 * i, 1.0))
        h.clock.advance(60)
        for i in range(100):
            h.service.record(snapshot(T0 - 3 * DAY + 10 * i, 2.0))
        h.clock.advance(60)
        self.assertEqual(
            h.query(["cpu.percent"], T0, T0 + 1000, 100).values["cpu.percent"]["avg"], [1.0] * 100
        )
        after = h.query(["cpu.percent"], T0 - 3 * DAY, T0 - 3 * DAY + 1000, 100)
        self.assertEqual(after.values["cpu.percent"]["avg"], [2.0] * 100)


V1_TABLE = (
    "CREATE TABLE {name} (bucket INTEGER NOT NULL, series_id INTEGER NOT NULL, "
    "min REAL NOT NULL, sum REAL NOT NULL, max REAL NOT NULL, n INTEGER NOT NULL, "
    "PRIMARY KEY (bucket, series_id)) WITHOUT ROWID"
)


def write_version_1(
    path: str, rows: dict[int, list[tuple[int, str, float, float, float, int]]]
) -> None:
    """A file in the layout before slots: C{PRIMARY KEY (bucket, series_id)}."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA page_size=1024")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE series (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value REAL) WITHOUT ROWID")
    ids: dict[str, int] = {}
    for step in (10, 60, 900, 10800, 5):
        db.execute(V1_TABLE.format(name=schema.table(step)))
    for step, table_rows in rows.items():
        for bucket, name, lo, total, hi, n in table_rows:
            if name not in ids:
                ids[name] = db.execute("INSERT INTO series (name) VALUES (?)", (name,)).lastrowid
            db.execute(
                f"INSERT INTO {schema.table(step)} VALUES (?, ?, ?, ?, ?, ?)",
                (bucket, ids[name], lo * 100, total * 100, hi * 100, n),
            )
    db.execute("PRAGMA user_version=1")
    db.close()


class SlotTableTests(SynchronousTestCase):
    """Each table is a ring of slots overwritten in place (L{pistatsd.history.slots})."""

    small = (schema.Resolution(10, 1000), schema.Resolution(60, 600))

    def setUp(self) -> None:
        os.makedirs(self.mktemp())
        self.path = os.path.join(self.mktemp(), "h.sqlite3")

    def pragma(self, name: str) -> int:
        db = sqlite3.connect(self.path)
        try:
            return int(db.execute(f"PRAGMA {name}").fetchone()[0])
        finally:
            db.close()

    def test_a_full_table_is_overwritten_in_place_nothing_freed(self) -> None:
        """Once the ring is full, new buckets overwrite the oldest rows: no row is
        deleted, no page freed, the file does not grow."""
        h = Harness(self, self.path, resolutions=self.small)
        names = {f"s{i}": {"value": 1.0} for i in range(40)}
        t = T0
        for turn in range(4):
            for _ in range(100):
                h.service.record({"timestamp": t, "sensors": names})
                t += 10
                if (t - T0) % 60 == 0:
                    h.clock.advance(60)
            if turn == 1:
                pages = self.pragma("page_count")
        h.clock.advance(60)
        self.assertEqual(self.pragma("freelist_count"), 0)
        self.assertEqual(self.pragma("page_count"), pages)
        buckets = sorted({r[1] for r in stored_rows(self.path, 10)})
        self.assertEqual(buckets, [t - 10 * i for i in range(100, 0, -1)])
        self.assertEqual(len(stored_rows(self.path, 10)), 100 * 40)

    def test_clock_back_into_a_full_table_keeps_what_was_stored(self) -> None:
        """A bucket older than every stored one in a full ring is not kept: the slot
        it would share by arithmetic keeps its newer rows."""
        roomy = (schema.Resolution(10, 1000), schema.Resolution(60, 6000))
        h = Harness(self, self.path, resolutions=roomy)
        for i in range(100):
            h.service.record(snapshot(T0 + 10 * i, 1.0))
        h.clock.advance(60)
        for i in range(10):
            h.service.record(snapshot(T0 - 1000 + 10 * i, 2.0))  # one ring earlier
        h.clock.advance(60)
        answer = h.query(["cpu.percent"], T0, T0 + 1000, points=100)
        self.assertEqual(answer.step, 10)
        self.assertEqual(answer.values["cpu.percent"]["avg"], [1.0] * 100)
        self.assertEqual(sorted({r[1] for r in stored_rows(self.path, 10)})[0], T0)
        # The coarser level had room: the 1 min rows of the jump are kept.
        early = h.query(["cpu.percent"], T0 - 1000, T0 - 900, points=1)
        self.assertEqual(early.step, 120)
        self.assertEqual(set(early.values["cpu.percent"]["avg"]), {2.0})

    def test_rows_of_a_series_missing_from_the_new_bucket_go(self) -> None:
        """A series with no sample in the bucket that takes a slot leaves no stale row
        there (it would show in a query spanning both buckets)."""
        h = Harness(self, self.path, resolutions=self.small)
        h.service.record(snapshot(T0, 1.0, mem=5.0))
        for i in range(1, 101):
            h.service.record({"timestamp": T0 + 10 * i, "cpu": {"percent": 2.0}})
        h.clock.advance(60)
        self.assertEqual([r for r in stored_rows(self.path, 10) if r[0] == "memory.percent"], [])
        self.assertEqual(len(stored_rows(self.path, 10)), 100)

    def test_rows_that_do_not_match_their_slot_are_removed_at_open(self) -> None:
        """Should a file hold rows of another bucket in a slot, a bucket in two slots,
        or slots past the count, opening it leaves one bucket per slot."""
        h = Harness(self, self.path, resolutions=self.small)
        for i in range(3):
            h.service.record(snapshot(T0 + 10 * i, 1.0))
        h.stop()
        db = sqlite3.connect(self.path, isolation_level=None)
        sid = db.execute("SELECT id FROM series WHERE name = 'cpu.percent'").fetchone()[0]
        other = db.execute("INSERT INTO series (name) VALUES ('swap.percent')").lastrowid
        insert = "INSERT INTO points_10 VALUES (?, ?, ?, 100, 100, 100, 1)"
        db.execute(insert, (1, other, int(T0) - 10))  # another bucket in slot 1
        db.execute(insert, (5, sid, int(T0)))  # T0 again, in slot 5
        db.execute(insert, (500, sid, int(T0) + 50))  # past the 100 slots
        db.close()
        again = Harness(self, self.path, resolutions=self.small)
        rows = stored_rows(self.path, 10)
        self.assertEqual(sorted({r[1] for r in rows}), [T0, T0 + 10, T0 + 20])
        self.assertEqual(len(rows), 6)
        answer = again.query(["cpu.percent", "swap.percent"], T0 - 10, T0 + 60, points=7)
        self.assertEqual(answer.values["swap.percent"]["avg"][:4], [None] * 4)
        self.assertEqual(answer.values["cpu.percent"]["avg"][:4], [None, 1.0, 1.0, 1.0])

    def test_version_1_file_is_converted_and_answers_the_same(self) -> None:
        write_version_1(
            self.path,
            {
                10: [(int(T0) + 10 * i, "cpu.percent", i, 2 * i + 1, i + 1, 2) for i in range(150)]
                + [(int(T0), "memory.percent", 7.0, 14.0, 7.0, 2)],
                60: [(int(T0), "cpu.percent", 0.0, 6.0, 5.0, 6)],
                5: [(int(T0), "cpu.percent", 1.0, 1.0, 1.0, 1)],
            },
        )
        h = Harness(self, self.path, resolutions=self.small)
        self.assertEqual(self.pragma("user_version"), schema.SCHEMA_VERSION)
        # The newest 100 buckets (the capacity) are kept, the oldest dropped.
        buckets = sorted({r[1] for r in stored_rows(self.path, 10)})
        self.assertEqual(buckets, [T0 + 10 * i for i in range(50, 150)])
        answer = h.query(["cpu.percent"], T0 + 500, T0 + 1500, points=100)
        self.assertEqual(answer.step, 10)
        self.assertEqual(answer.values["cpu.percent"]["min"][:2], [50.0, 51.0])
        self.assertEqual(answer.values["cpu.percent"]["avg"][:2], [50.5, 51.5])
        coarse = h.query(["cpu.percent"], T0, T0 + 60, points=1)
        self.assertEqual(coarse.values["cpu.percent"]["avg"], [1.0])
        db = sqlite3.connect(self.path)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        finally:
            db.close()
        self.assertNotIn(schema.table(5), tables)  # a resolution not kept
        # It goes on from the newest bucket, into the slot of the oldest.
        h.service.record(snapshot(T0 + 1500, 9.0))
        h.clock.advance(60)
        buckets = sorted({r[1] for r in stored_rows(self.path, 10)})
        self.assertEqual(buckets, [T0 + 10 * i for i in range(51, 151)])
        h.stop()
        again = Harness(self, self.path, resolutions=self.small)
        answer = again.query(["cpu.percent"], T0 + 1490, T0 + 1510, points=2)
        self.assertEqual(answer.values["cpu.percent"]["avg"], [149.5, 9.0])


def fill(h: Harness, days: float, series: int = 40, every: float = 60.0) -> None:
    """Record C{series} series every C{every} seconds for C{days}, flushing as it goes."""
    t = T0
    end = T0 + days * DAY
    while t < end:
        h.service.record(
            {"timestamp": t, "sensors": {f"s{i}": {"value": (t + i) % 97} for i in range(series)}}
        )
        t += every
        if t % 3600 == 0:
            h.clock.advance(60)
    h.clock.advance(60)


class SizeBoundTests(SynchronousTestCase):
    def test_the_file_never_exceeds_the_bound_and_coarse_keeps_longer(self) -> None:
        os.makedirs(self.mktemp())
        path = os.path.join(self.mktemp(), "h.sqlite3")
        bound = 1 << 20
        h = Harness(self, path, max_bytes=bound)
        fill(h, days=12, series=20, every=60.0)
        self.assertLessEqual(os.path.getsize(path), bound)
        self.assertLessEqual(h.service.state()["size_bytes"], bound)
        oldest = {step: min(r[1] for r in stored_rows(path, step)) for step in (60, 900, 10800)}
        newest = max(r[1] for r in stored_rows(path, 60))
        self.assertGreater(newest, T0 + 11.9 * DAY)  # the newest rows are kept
        self.assertGreater(oldest[60], T0)  # the oldest fine rows went
        self.assertLess(oldest[900], oldest[60])  # coarse keeps longer
        self.assertLessEqual(oldest[10800], oldest[900])
        self.assertEqual(h.service.state()["flush_failures"], 0)


class CorruptFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "history.sqlite3")
        self.log = Logged(self)

    def good_file(self) -> None:
        h = Harness(self, self.path)
        h.service.record(snapshot(T0, 1.0))
        h.stop()

    def assert_replaced(self) -> None:
        h = Harness(self, self.path)
        self.assertTrue(h.service.state()["open"])
        aside = [n for n in os.listdir(self.dir) if n.startswith("history.sqlite3.corrupt-")]
        self.assertEqual(len(aside), 1, os.listdir(self.dir))
        self.assertEqual(self.log.count("moved aside"), 1)
        h.service.record(snapshot(T0, 7.0))
        h.clock.advance(60)
        self.assertEqual(h.query(["cpu.percent"], T0, T0 + 10).values["cpu.percent"]["max"], [7.0])

    def test_garbage(self) -> None:
        with open(self.path, "wb") as f:
            f.write(b"this is not a database " * 1000)
        self.assert_replaced()

    def test_garbage_over_a_real_file(self) -> None:
        self.good_file()
        with open(self.path, "r+b") as f:
            f.write(b"\xff" * 200)
        self.assert_replaced()

    def test_wal_and_shm_move_with_the_file(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with open(self.path + suffix, "w") as f:
                f.write(suffix or "main")
        target = store.move_aside(self.path, T0)
        self.assertTrue(target.startswith(self.path + ".corrupt-20270115T060000Z"))
        for suffix in ("", "-wal", "-shm"):
            self.assertFalse(os.path.exists(self.path + suffix))
            with open(target + suffix) as f:
                self.assertEqual(f.read(), suffix or "main")
        self.assertNotEqual(store.move_aside(self.path + "-none", T0), target)

    def test_truncated(self) -> None:
        h = Harness(self, self.path)
        fill(h, days=1, series=10)
        h.stop()
        size = os.path.getsize(self.path)
        with open(self.path, "r+b") as f:
            f.truncate(size // 2)
        self.assert_replaced()

    def test_a_directory(self) -> None:
        os.makedirs(os.path.join(self.path, "inside"))
        self.assert_replaced()

    def test_unusable_place_runs_without_history(self) -> None:
        with open(os.path.join(self.dir, "file"), "w") as f:
            f.write("x")
        h = Harness(self, os.path.join(self.dir, "file", "history.sqlite3"))
        state = h.service.state()
        self.assertFalse(state["open"])
        self.assertIsNotNone(state["last_error"])
        self.assertEqual(self.log.count("running without it"), 1)
        h.service.record(snapshot(T0, 1.0))
        h.clock.advance(60)
        self.assertEqual(h.service.state()["pending_rows"], 0)

    def test_a_full_disk_while_converting_keeps_the_file(self) -> None:
        """A full disk is not a bad file: nothing is moved aside, the history is off
        until the next start, and the conversion is tried again then."""
        write_version_1(self.path, {10: [(int(T0), "cpu.percent", 1.0, 1.0, 1.0, 1)]})
        real = schema.migrate

        def full(*args: Any) -> None:
            e = sqlite3.OperationalError("database or disk is full")
            e.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
            raise e

        schema.migrate = full  # type: ignore[assignment]
        try:
            h = Harness(self, self.path)
        finally:
            schema.migrate = real  # type: ignore[assignment]
        self.assertFalse(h.service.state()["open"])
        self.assertIn("the disk is full", h.service.state()["last_error"])
        self.assertEqual(self.log.count("running without it"), 1)
        self.assertEqual([n for n in os.listdir(self.dir) if "corrupt" in n], [])
        h.stop()
        again = Harness(self, self.path)
        self.assertEqual(
            again.query(["cpu.percent"], T0, T0 + 10).values["cpu.percent"]["avg"], [1.0]
        )


class FailingWriteTests(SynchronousTestCase):
    def setUp(self) -> None:
        os.makedirs(self.mktemp())
        self.path = os.path.join(self.mktemp(), "h.sqlite3")
        self.log = Logged(self)
        self.broken = True
        real_write = store.HistoryStore.write

        def write(this: store.HistoryStore, parts: Any, latest: Any = None) -> store.FlushResult:
            if self.broken:
                raise sqlite3.OperationalError("disk I/O error")
            return real_write(this, parts, latest)

        self.patch(store.HistoryStore, "write", write)

    def test_rows_wait_and_the_episode_is_logged_once(self) -> None:
        h = Harness(self, self.path)
        for minute in range(5):
            h.service.record(snapshot(T0 + 60 * minute, float(minute)))
            h.clock.advance(60)
        state = h.service.state()
        self.assertEqual(state["flush_failures"], 5)
        self.assertIn("disk I/O error", state["last_error"])
        self.assertEqual(self.log.count("cannot write"), 1)
        self.broken = False
        h.clock.advance(60)
        self.assertEqual(h.service.state()["pending_rows"], 4)  # the open 15 min and 3 h ones
        self.assertIsNone(h.service.state()["last_error"])
        rows = [r for r in stored_rows(self.path, 10) if r[0] == "cpu.percent"]
        self.assertEqual([r[2] for r in rows], [0.0, 1.0, 2.0, 3.0, 4.0])
        # A second episode is logged again.
        self.broken = True
        h.service.record(snapshot(T0 + 600, 1.0))
        h.clock.advance(60)
        self.assertEqual(self.log.count("cannot write"), 2)

    def test_buffer_is_bounded_and_counted(self) -> None:
        h = Harness(self, self.path, max_pending=100)
        for i in range(200):
            h.service.record(snapshot(T0 + 10 * i, 1.0))
            if i % 6 == 0:
                h.clock.advance(60)
        state = h.service.state()
        self.assertLessEqual(state["pending_rows"], 100)
        self.assertGreater(state["dropped_rows"], 0)
        self.assertEqual(self.log.count("dropping the oldest"), 1)
        self.broken = False
        h.clock.advance(60)
        rows = stored_rows(self.path, 10)
        newest = max(r[1] for r in rows)
        self.assertEqual(newest, T0 + 1990)  # the newest survive; the oldest went


class HealthTests(SynchronousTestCase):
    def test_same_keys_as_off(self) -> None:
        os.makedirs(self.mktemp())
        h = Harness(self, os.path.join(self.mktemp(), "h.sqlite3"))
        self.assertEqual(set(h.service.state()), set(HISTORY_OFF))
        h.service.record(snapshot(T0, 1.0))
        h.clock.advance(60)
        state = h.service.state()
        self.assertTrue(state["enabled"])
        self.assertGreater(state["size_bytes"], 0)
        self.assertEqual(state["series"], 2)
        self.assertIsNotNone(state["last_flush_seconds"])

    def test_metrics(self) -> None:
        os.makedirs(self.mktemp())
        h = Harness(self, os.path.join(self.mktemp(), "h.sqlite3"))
        h.service.record(snapshot(T0, 1.0))
        names: Iterator[str] = (m.name for m in HistoryCollector(h.service.state).collect())
        self.assertEqual(
            set(names),
            {
                "pistatsd_history_database_bytes",
                "pistatsd_history_pending_rows",
                "pistatsd_history_dropped_rows",
                "pistatsd_history_flush_failures",
                "pistatsd_history_queries",
                "pistatsd_history_queries_refused",
            },
        )
        h.clock.advance(60)
        families = {m.name: m.samples[0].value for m in HistoryCollector(h.service.state).collect()}
        self.assertEqual(families["pistatsd_history_pending_rows"], 4)
        self.assertIn("pistatsd_history_last_flush_timestamp_seconds", families)
        self.assertIn("pistatsd_history_flush_duration_seconds", families)
