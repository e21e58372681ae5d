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

The map is kept in memory (two dicts and a sorted list per resolution, about
a megabyte at defaults); a write that fails is undone with L{Slots.rollback}.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable


class Slots:
    """The buckets stored in one resolution's table and the slot of each."""

    def __init__(self, capacity: int, pairs: Iterable[tuple[int, int]] = ()) -> None:
        """
        @param capacity: the number of slots (the retention count).
        @param pairs: C{(slot, bucket)} as stored; slots past C{capacity} (a
            smaller retention than when they were written) and a second slot
            of the same bucket are ignored and reported by L{stray}.
        """
        self.capacity = max(1, capacity)
        self._slot_of: dict[int, int] = {}
        self._bucket_in: dict[int, int] = {}
        #: Slots ignored (see C{pairs}): the store deletes their rows.
        self.stray: list[int] = []
        for slot, bucket in pairs:
            if 0 <= slot < self.capacity and bucket not in self._slot_of:
                self._slot_of[bucket] = slot
                self._bucket_in[slot] = bucket
            else:
                self.stray.append(slot)
        #: The stored buckets, oldest first.
        self.buckets: list[int] = sorted(self._slot_of)
        self._free = set(range(self.capacity)) - set(self._bucket_in)
        self._undo: list[tuple[bool, int, int]] | None = None

    def __len__(self) -> int:
        return len(self.buckets)

    def slot(self, bucket: int) -> int | None:
        """The slot holding C{bucket}, or C{None}."""
        return self._slot_of.get(bucket)

    def place(self, bucket: int) -> tuple[int, int | None] | None:
        """The slot for C{bucket}'s rows, and the bucket it takes the slot from (whose
        rows must go), or C{None} when the table is full of newer buckets."""
        slot = self._slot_of.get(bucket)
        if slot is not None:
            return slot, None
        evicted: int | None = None
        if self._free:
            newest = self._slot_of[self.buckets[-1]] if self.buckets else self.capacity - 1
            slot = (newest + 1) % self.capacity
            if slot not in self._free:
                slot = min(self._free)
        else:
            evicted = self.buckets[0]
            if bucket < evicted:
                return None
            slot = self._slot_of[evicted]
            self._remove(evicted, slot)
        self._add(bucket, slot)
        return slot, evicted

    def remove(self, bucket: int) -> None:
        """Forget C{bucket} (its rows are gone); its slot is free."""
        slot = self._slot_of.get(bucket)
        if slot is not None:
            self._remove(bucket, slot)

    def remove_before(self, cutoff: int) -> None:
        """Forget every bucket older than C{cutoff}."""
        for bucket in self.buckets[: bisect.bisect_left(self.buckets, cutoff)]:
            self.remove(bucket)

    def ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        """The slots of the buckets in C{[start, end)}, as inclusive C{(first, last)}
        runs in slot order (a ring gives one or two)."""
        i = bisect.bisect_left(self.buckets, start)
        j = bisect.bisect_left(self.buckets, end)
        slots = sorted(self._slot_of[b] for b in self.buckets[i:j])
        runs: list[tuple[int, int]] = []
        for slot in slots:
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
                self._remove(bucket, slot)
            else:
                self._add(bucket, slot)
        self._undo = None

    def _add(self, bucket: int, slot: int) -> None:
        self._slot_of[bucket] = slot
        self._bucket_in[slot] = bucket
        self._free.discard(slot)
        if not self.buckets or bucket > self.buckets[-1]:
            self.buckets.append(bucket)
        else:
            bisect.insort(self.buckets, bucket)
        if self._undo is not None:
            self._undo.append((True, bucket, slot))

    def _remove(self, bucket: int, slot: int) -> None:
        del self._slot_of[bucket]
        del self._bucket_in[slot]
        self._free.add(slot)
        if self.buckets and self.buckets[0] == bucket:
            del self.buckets[0]
        else:
            del self.buckets[bisect.bisect_left(self.buckets, bucket)]
        if self._undo is not None:
            self._undo.append((False, bucket, slot))
