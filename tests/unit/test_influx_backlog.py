"""The backlog on its own: the bound, order, put_back, drop counting, spooling and replay.

No reactor, no HTTP: time is the C{now} passed in, the spool a file in a temp dir.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.influx.backlog import SPOOL_BATCH, Backlog, Batch, Drops
from pistatsd.influx.spool import Spool
from tests.influxd import capture_all_logs, rendered


def lines(start: int, stop: int) -> list[str]:
    """Valid, numbered line-protocol lines C{start} .. C{stop - 1}."""
    return [f"t,host=pi n={i}i {1700000000000 + i}" for i in range(start, stop)]


def numbers(batch: Batch | None) -> list[int]:
    """The C{n} of each line of a batch."""
    assert batch is not None
    return [int(line.split("n=")[1].split("i")[0]) for line in batch.lines]


class BacklogTestCase(SynchronousTestCase):
    def make(self, limit: int = 100, spool: bool = True, spool_after: float = 60.0) -> Backlog:
        self.spool_path = os.path.join(self.mktemp(), "state", "influx-spool.lp")
        self.spool = Spool(self.spool_path) if spool else None
        self.backlog = Backlog(
            limit=limit, spool=self.spool, spool_after=spool_after, url="http://influx:8086"
        )
        return self.backlog

    def drain(self, n: int = 1000) -> list[int]:
        """Take and deliver every batch; the numbers delivered, in order."""
        got: list[int] = []
        while (batch := self.backlog.next_batch(n)) is not None:
            got += numbers(batch)
            self.backlog.delivered(batch)
        return got


class QueueTests(BacklogTestCase):
    def test_oldest_first_in_batches_of_at_most_n(self) -> None:
        backlog = self.make()
        backlog.put(lines(0, 5), now=1.0)
        backlog.put(lines(5, 7), now=2.0)
        self.assertEqual(numbers(backlog.next_batch(3)), [0, 1, 2])
        self.assertEqual(backlog.queued, 7, "the batch out still counts")
        self.assertEqual(self.drain(3), [3, 4, 5, 6])
        self.assertEqual(backlog.queued, 0)
        self.assertIsNone(backlog.next_batch(3))

    def test_put_back_restores_the_batch_in_front_in_order(self) -> None:
        backlog = self.make()
        backlog.put(lines(0, 6), now=1.0)
        batch = backlog.next_batch(4)
        backlog.put(lines(6, 8), now=2.0)  # arrives while the batch is out
        assert batch is not None
        backlog.put_back(batch)
        self.assertEqual(backlog.queued, 8)
        self.assertEqual(self.drain(), list(range(8)))

    def test_put_back_twice_or_after_delivery_changes_nothing(self) -> None:
        backlog = self.make()
        backlog.put(lines(0, 3), now=1.0)
        batch = backlog.next_batch(3)
        assert batch is not None
        backlog.delivered(batch)
        backlog.put_back(batch)
        self.assertEqual(backlog.queued, 0)

    def test_the_bound_drops_the_oldest_and_counts_them(self) -> None:
        events = capture_all_logs(self)
        backlog = self.make(limit=5, spool=False)
        backlog.put(lines(0, 4), now=1.0)
        backlog.put(lines(4, 8), now=2.0)
        backlog.put(lines(8, 9), now=3.0)
        self.assertEqual(backlog.queued, 5)
        self.assertEqual(backlog.drops.overflow, 4)
        self.assertEqual(sum("queue full" in rendered([e]) for e in events), 1, "once")
        self.assertEqual(self.drain(2), [4, 5, 6, 7, 8], "the newest kept, in order")
        self.assertEqual(sum("no longer full" in rendered([e]) for e in events), 1)

    def test_the_batch_out_counts_against_the_bound(self) -> None:
        backlog = self.make(limit=5, spool=False)
        backlog.put(lines(0, 4), now=1.0)
        batch = backlog.next_batch(4)
        backlog.put(lines(4, 7), now=2.0)  # 4 out + 3 waiting: one too many
        self.assertEqual(backlog.queued, 5)
        self.assertEqual(backlog.drops.overflow, 2, "only waiting lines can be dropped")
        assert batch is not None
        backlog.put_back(batch)  # 4 + 1 waiting: still within the bound
        self.assertEqual(backlog.queued, 5)
        self.assertEqual(self.drain(), [0, 1, 2, 3, 6])

    def test_put_back_beyond_the_bound_drops_the_oldest(self) -> None:
        backlog = self.make(limit=4, spool=False)
        backlog.put(lines(0, 3), now=1.0)
        batch = backlog.next_batch(3)
        backlog.put(lines(3, 4), now=2.0)
        assert batch is not None
        backlog.put_back(batch)
        self.assertEqual((backlog.queued, backlog.drops.overflow), (4, 0))

    def test_rejected_points_are_counted_and_forgotten(self) -> None:
        backlog = self.make()
        backlog.put(lines(0, 3), now=1.0)
        batch = backlog.next_batch(3)
        assert batch is not None
        backlog.rejected(batch, 2)
        self.assertEqual((backlog.queued, backlog.drops.rejected, backlog.drops.total), (0, 2, 2))


class DropsTests(SynchronousTestCase):
    def test_total_unreported_and_the_report_point(self) -> None:
        drops = Drops()
        drops.overflow += 3
        drops.rejected += 2
        self.assertEqual((drops.total, drops.unreported), (5, 5))
        point = drops.report("pi", 1700000000000)
        self.assertEqual(
            point.line(),
            "pistatsd_reporter,host=pi dropped=5i,dropped_total=5i,overflow=3i,rejected=2i,"
            "spool_overflow=0i,spool_corrupt=0i,lost=0i 1700000000000",
        )
        self.assertEqual(drops.unreported, 0, "reported once")
        drops.lost += 1
        self.assertEqual((drops.total, drops.unreported, drops.take_unreported()), (6, 1, 1))
        self.assertEqual(drops.unreported, 0)


class SpoolingTests(BacklogTestCase):
    def test_lines_that_waited_spool_after_go_to_the_spool_in_order(self) -> None:
        backlog = self.make()
        backlog.put(lines(0, 3), now=100.0)
        backlog.put(lines(3, 5), now=130.0)
        backlog.spool_stale(now=159.9)
        self.assertEqual((backlog.queued, backlog.spooled), (5, 0), "not a minute yet")
        backlog.spool_stale(now=160.0)
        self.assertEqual((backlog.queued, backlog.spooled), (0, 5), "the whole queue")
        backlog.put(lines(5, 6), now=161.0)
        self.assertEqual(self.drain(2), list(range(6)), "spool first, then memory")
        self.assertFalse(os.path.exists(self.spool_path), "removed once delivered")

    def test_nothing_is_spooled_while_a_batch_of_older_lines_is_out(self) -> None:
        backlog = self.make()
        backlog.put(lines(0, 4), now=100.0)
        batch = backlog.next_batch(2)
        backlog.spool_stale(now=200.0)
        self.assertEqual(backlog.spooled, 0, "order would break")
        assert batch is not None
        backlog.put_back(batch)
        backlog.spool_stale(now=200.0)
        self.assertEqual(backlog.spooled, 4)

    def test_a_spool_batch_put_back_is_read_again(self) -> None:
        backlog = self.make()
        backlog.put(lines(0, 3), now=0.0)
        backlog.spool_stale(now=60.0)
        first = backlog.next_batch(10)
        assert first is not None
        backlog.put_back(first)
        self.assertEqual(numbers(backlog.next_batch(10)), [0, 1, 2])

    def test_spool_reads_are_bounded(self) -> None:
        backlog = self.make(limit=SPOOL_BATCH * 2)
        backlog.put(lines(0, SPOOL_BATCH + 5), now=0.0)
        backlog.spool_stale(now=60.0)
        batch = backlog.next_batch(5000)
        assert batch is not None
        self.assertEqual(len(batch.lines), SPOOL_BATCH)

    def test_shutdown_spools_memory_and_the_next_start_replays_it_first(self) -> None:
        events = capture_all_logs(self)
        backlog = self.make()
        backlog.open()
        backlog.put(lines(0, 4), now=0.0)
        backlog.close()
        self.assertIn("4 unsent points spooled", rendered(events))
        again = Backlog(
            limit=100, spool=Spool(self.spool_path), spool_after=60.0, url="http://influx:8086"
        )
        self.assertEqual(again.open(), 4)
        again.put(lines(4, 5), now=1.0)
        self.backlog = again
        self.assertEqual(self.drain(), [0, 1, 2, 3, 4])
        self.assertEqual(again.drops.total, 0)

    def test_shutdown_without_a_spool_counts_memory_as_lost(self) -> None:
        backlog = self.make(spool=False)
        backlog.put(lines(0, 3), now=0.0)
        backlog.close()
        self.assertEqual((backlog.queued, backlog.drops.lost, backlog.drops.unreported), (0, 3, 3))

    def test_replay_skips_and_counts_damaged_and_torn_lines(self) -> None:
        backlog = self.make()
        os.makedirs(os.path.dirname(self.spool_path))
        good = lines(0, 2)
        with open(self.spool_path, "w") as f:
            f.write(f"{good[0]}\nnot line protocol\n{good[1]}\nt,host=pi n=9")  # torn last line
        self.assertEqual(backlog.open(), 3)
        self.assertEqual(backlog.drops.spool_corrupt, 1, "the torn line")
        self.assertEqual(self.drain(), [0, 1])
        self.assertEqual(backlog.drops.spool_corrupt, 2, "and the damaged one")

    def test_an_unwritable_spool_keeps_the_lines_in_memory(self) -> None:
        events = capture_all_logs(self)
        backlog = self.make()
        os.makedirs(os.path.dirname(os.path.dirname(self.spool_path)))
        with open(os.path.dirname(self.spool_path), "w"):
            pass  # a file where the state directory should be
        backlog.put(lines(0, 2), now=0.0)
        backlog.spool_stale(now=60.0)
        backlog.spool_stale(now=120.0)
        self.assertEqual((backlog.queued, backlog.drops.total), (2, 0))
        self.assertEqual(sum("cannot be written" in rendered([e]) for e in events), 1)
        backlog.close()
        self.assertEqual(backlog.drops.lost, 2, "nowhere to keep them at shutdown")

    def test_a_full_spool_drops_its_oldest_lines_and_counts_them(self) -> None:
        events = capture_all_logs(self)
        backlog = self.make()
        assert self.spool is not None
        self.spool.max_bytes = 200  # a few lines
        backlog.put(lines(0, 10), now=0.0)
        backlog.spool_stale(now=60.0)
        kept = backlog.spooled
        self.assertGreater(kept, 0)
        self.assertEqual(backlog.drops.spool_overflow, 10 - kept)
        self.assertEqual(self.drain(), list(range(10 - kept, 10)), "the newest kept")
        text = rendered(events)
        self.assertIn("is full", text)
        self.assertIn("spool drained", text)
