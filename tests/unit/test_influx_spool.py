"""The spool file: append, replay in order, commit, corrupt lines, the size cap."""

from __future__ import annotations

import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.influx.spool import Spool


def lines(n: int, start: int = 0, measurement: str = "m") -> list[str]:
    """C{n} distinct valid lines (the same length for n < 10**6)."""
    return [
        f"{measurement},host=pi v={i:06d}i {1700000000000 + i}" for i in range(start, start + n)
    ]


class SpoolTests(SynchronousTestCase):
    def make(self, max_bytes: int = 1 << 20) -> Spool:
        directory = os.path.join(self.mktemp(), "state")  # does not exist yet
        spool = Spool(os.path.join(directory, "influx-spool.lp"), max_bytes=max_bytes)
        self.assertEqual(spool.open(), 0)
        return spool

    def read_all(self, spool: Spool, batch: int = 1000) -> list[str]:
        got: list[str] = []
        while spool.pending:
            b = spool.read(batch)
            got += b.lines
            spool.commit(b)
        return got

    def test_append_creates_the_directory_and_a_private_file(self) -> None:
        spool = self.make()
        self.assertEqual(spool.append(lines(3)), 0)
        self.assertEqual(spool.pending, 3)
        self.assertEqual(stat.S_IMODE(os.stat(spool.path).st_mode), 0o600)
        with open(spool.path) as f:
            self.assertEqual(f.read().splitlines(), lines(3))

    def test_replay_in_order_then_the_file_is_removed(self) -> None:
        spool = self.make()
        spool.append(lines(5))
        spool.append(lines(5, start=5))
        first = spool.read(3)
        self.assertEqual(first.lines, lines(3))
        self.assertEqual(spool.read(3).lines, lines(3), "nothing is consumed before commit")
        spool.commit(first)
        self.assertEqual(spool.pending, 7)
        rest = spool.read(100)
        self.assertEqual(rest.lines, lines(7, start=3))
        spool.commit(rest)
        self.assertEqual(spool.pending, 0)
        self.assertFalse(os.path.exists(spool.path))

    def test_next_start_replays_what_is_left(self) -> None:
        spool = self.make()
        spool.append(lines(10))
        spool.commit(spool.read(4))
        spool.close()  # a clean stop cuts the delivered head
        again = Spool(spool.path)
        self.assertEqual(again.open(), 6)
        self.assertEqual(self.read_all(again), lines(6, start=4))
        self.assertFalse(os.path.exists(spool.path))

    def test_corrupt_lines_are_skipped_and_counted(self) -> None:
        spool = self.make()
        good = lines(4)
        with open(spool.path, "wb") as f:
            f.write(
                (good[0] + "\n" + "garbage here\n" + good[1] + "\n").encode()
                + b"\xff\xfe not utf-8\n"
                + b"\n"  # blank: ignored, not counted
                + (good[2] + "\n" + good[3] + "\n").encode()
            )
        self.assertEqual(spool.open(), 7)
        batch = spool.read(10)
        self.assertEqual(batch.lines, good)
        self.assertEqual(batch.corrupt, 2)
        spool.commit(batch)
        self.assertEqual(spool.pending, 0)

    def test_a_torn_last_line_is_cut_off(self) -> None:
        spool = self.make()
        good = lines(2)
        with open(spool.path, "wb") as f:
            f.write((good[0] + "\n" + good[1][:-3]).encode())  # timestamp cut: looks valid
        self.assertEqual(spool.open(), 1)
        self.assertEqual(spool.torn, 1)
        spool.append(lines(1, start=9))
        self.assertEqual(self.read_all(spool), [good[0], *lines(1, start=9)])

    def test_empty_or_missing_file(self) -> None:
        spool = self.make()
        self.assertEqual(spool.read(10).lines, [])
        open(spool.path, "wb").close()
        self.assertEqual(spool.open(), 0)
        self.assertFalse(os.path.exists(spool.path))

    def test_size_cap_drops_the_oldest(self) -> None:
        size = len(lines(1)[0]) + 1
        spool = self.make(max_bytes=size * 100)
        self.assertEqual(spool.append(lines(90)), 0)
        dropped = spool.append(lines(20, start=90))
        # Cut down to three quarters of the cap, the new lines included.
        self.assertEqual(dropped, 90 - (75 - 20))
        self.assertLessEqual(os.path.getsize(spool.path), size * 100)
        self.assertEqual(spool.pending, 75)
        self.assertEqual(self.read_all(spool), lines(75, start=35))

    def test_compaction_is_a_durable_private_replacement(self) -> None:
        """The rewrite is synced before it replaces the file, and stays owner-only."""
        size = len(lines(1)[0]) + 1
        spool = self.make(max_bytes=size * 10)
        spool.append(lines(8))
        synced: list[int] = []
        real = os.fsync

        def spy(fd: int) -> None:
            synced.append(fd)
            real(fd)

        self.patch(os, "fsync", spy)
        spool.append(lines(5, start=8))  # over the cap: compacts
        self.assertEqual(len(synced), 2)  # the new file, then the directory
        self.assertEqual(stat.S_IMODE(os.stat(spool.path).st_mode), 0o600)
        self.assertEqual(os.listdir(os.path.dirname(spool.path)), ["influx-spool.lp"])

    def test_a_single_append_larger_than_the_cap_keeps_the_newest(self) -> None:
        size = len(lines(1)[0]) + 1
        spool = self.make(max_bytes=size * 10)
        self.assertEqual(spool.append(lines(25)), 15)
        self.assertEqual(self.read_all(spool), lines(10, start=15))

    def test_compaction_between_read_and_commit_makes_the_batch_stale(self) -> None:
        size = len(lines(1)[0]) + 1
        spool = self.make(max_bytes=size * 10)
        spool.append(lines(8))
        batch = spool.read(2)
        spool.append(lines(5, start=8))  # compacts: offsets change
        spool.commit(batch)  # ignored
        self.assertEqual(self.read_all(spool), lines(7, start=6))

    def test_unwritable_directory_raises_for_the_caller(self) -> None:
        blocker = self.mktemp()
        open(blocker, "w").close()  # a file where the directory should be
        spool = Spool(os.path.join(blocker, "influx-spool.lp"))
        self.assertEqual(spool.open(), 0)
        self.assertRaises(OSError, spool.append, lines(1))
        self.assertEqual(spool.pending, 0)
