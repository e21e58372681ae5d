"""Which slot of a resolution's table holds which bucket: pure bookkeeping, no I/O.

Each resolution's table has a fixed number of slots (its retention count,
C{keep / step}), and a bucket's rows live in the slot it was given when it
was first written.  Rows are overwritten in place when the slot passes to a
newer bucket, instead of new rows at the end of the table and a delete of
the oldest ones at the head: on an SD card that is one page write per row
instead of two (the delete wrote every pruned page again, and the
checkpoint once more).

Slots are handed out in a ring: a new bucket takes the slot after the
newest one while the table has room, else the slot of the oldest bucket.
Retention is therefore still a count of buckets, not an age, and a clock
jump loses nothing stored: a jump forward by days takes the oldest slots
one by one as new buckets come (exactly as if time had passed); a jump back
fills free slots while there are some, and once the table is full a bucket
older than every stored one is not kept (what was stored before the jump
stays).  A bucket is never looked up by slot arithmetic: the slot of a
bucket is what this map says, and readers check the stored bucket too.

The map is kept in memory in two arrays of machine integers and a byte per
slot (about 0.6 MB at defaults, not a dict of Python ints); a write that
fails is undone with L{Slots.rollback}.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable


class Slots:
    """The buckets stored in one resolution's table and the slot of each."""

    def __init__(self, capacity: int, pairs: Iterable[tuple[int, int]] = ()) -> None:
        """
        @param capacity: the number of slots (the retention count).
        @param pairs: C{(slot, bucket)} as stored, one per slot; slots past
            C{capacity} (a smaller retention than when they were written) and
            a second slot of the same bucket are ignored and reported by
            L{stray}.
        """
        self.capacity = max(1, capacity)
        #: The stored buckets, oldest first.
        self.buckets = array("q")
        #: The slot of each of L{buckets}, in the same order.
        self._slots = array("q")
        self._used = bytearray(self.capacity)
        #: Slots ignored (see C{pairs}): the store deletes their rows.
        self.stray: list[int] = []
        for slot, bucket in sorted(pairs, key=lambda pair: (pair[1], pair[0])):
            duplicate = bool(self.buckets) and self.buckets[-1] == bucket
            if 0 <= slot < self.capacity and not duplicate:
                self.buckets.append(bucket)
                self._slots.append(slot)
                self._used[slot] = 1
            else:
                self.stray.append(slot)
        self._undo: list[tuple[bool, int, int]] | None = None

    def __len__(self) -> int:
        return len(self.buckets)

    def _index(self, bucket: int) -> int | None:
        i = bisect.bisect_left(self.buckets, bucket)
        return i if i < len(self.buckets) and self.buckets[i] == bucket else None

    def slot(self, bucket: int) -> int | None:
        """The slot holding C{bucket}, or C{None}."""
        i = self._index(bucket)
        return None if i is None else self._slots[i]

    def place(self, bucket: int) -> tuple[int, int | None] | None:
        """The slot for C{bucket}'s rows, and the bucket it takes the slot from (whose
        rows must go), or C{None} when the table is full of newer buckets."""
        i = self._index(bucket)
        if i is not None:
            return self._slots[i], None
        evicted: int | None = None
        if len(self.buckets) < self.capacity:
            newest = self._slots[-1] if self.buckets else self.capacity - 1
            slot = (newest + 1) % self.capacity
            if self._used[slot]:
                slot = self._used.index(0)
        else:
            evicted = self.buckets[0]
            if bucket < evicted:
                return None
            slot = self._slots[0]
            self._remove(0)
        self._add(bucket, slot)
        return slot, evicted

    def remove(self, bucket: int) -> None:
        """Forget C{bucket} (its rows are gone); its slot is free."""
        i = self._index(bucket)
        if i is not None:
            self._remove(i)

    def remove_before(self, cutoff: int) -> None:
        """Forget every bucket older than C{cutoff}."""
        for _ in range(bisect.bisect_left(self.buckets, cutoff)):
            self._remove(0)

    def ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        """The slots of the buckets in C{[start, end)}, as inclusive C{(first, last)}
        runs in slot order (a ring gives one or two)."""
        i = bisect.bisect_left(self.buckets, start)
        j = bisect.bisect_left(self.buckets, end)
        runs: list[tuple[int, int]] = []
        for slot in sorted(self._slots[i:j]):
            if runs and runs[-1][1] == slot - 1:
                runs[-1] = (runs[-1][0], slot)
            else:
                runs.append((slot, slot))
        return runs

    # -- transactions ------------------------------------------------------

    def begin(self) -> None:
        """Record changes from now on, so that L{rollback} can undo them."""
        self._undo = []

    def commit(self) -> None:
        self._undo = None

    def rollback(self) -> None:
        """Undo every change since L{begin} (the database rolled back)."""
        undo, self._undo = self._undo or [], None
        for added, bucket, slot in reversed(undo):
            if added:
                i = self._index(bucket)
                assert i is not None
                self._remove(i)
            else:
                self._add(bucket, slot)

    def _add(self, bucket: int, slot: int) -> None:
        if not self.buckets or bucket > self.buckets[-1]:
            self.buckets.append(bucket)
            self._slots.append(slot)
        else:
            i = bisect.bisect_left(self.buckets, bucket)
            self.buckets.insert(i, bucket)
            self._slots.insert(i, slot)
        self._used[slot] = 1
        if self._undo is not None:
            self._undo.append((True, bucket, slot))

    def _remove(self, i: int) -> None:
        bucket, slot = self.buckets[i], self._slots[i]
        del self.buckets[i]
        del self._slots[i]
        self._used[slot] = 0
        if self._undo is not None:
            self._undo.append((False, bucket, slot))
