"""Ring and store on one time axis: pure functions, no I/O, no clock.

The ring (the sampler's last hour, one snapshot per sample) is the finest
and freshest data there is; the store has everything older, rolled up.  An
answer is one shared axis of buckets; each bucket takes the ring's numbers
where the ring covers it and the store's where it does not, so after a
restart (an empty ring) the hours before it still show.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from attrs import frozen

from pistatsd.history.api import SeriesData

#: The three numbers of every point.
FIELDS = ("min", "avg", "max")

Values = dict[str, dict[str, list[float | None]]]
"""Name -> {"min", "avg", "max"} -> one value (or None) per bucket."""

Sample = tuple[float, Mapping[str, float]]
"""One ring entry: its epoch timestamp and its flattened numbers."""


@frozen
class Axis:
    """C{count} buckets of C{step} seconds from C{start} (a multiple of C{step})."""

    start: float
    step: int
    count: int

    @classmethod
    def covering(cls, start: float, end: float, step: int) -> Axis:
        """The buckets, aligned to C{step}, that cover [start, end)."""
        first = math.floor(start / step) * step
        return cls(float(first), step, max(1, math.ceil((end - first) / step)))

    def times(self) -> list[float]:
        """Each bucket's start."""
        return [self.start + i * self.step for i in range(self.count)]

    def index(self, when: float) -> int | None:
        """The bucket C{when} falls in, or None outside the axis."""
        i = math.floor((when - self.start) / self.step)
        return i if 0 <= i < self.count else None


def ring_step(start: float, end: float, points: int, interval: float) -> int:
    """Seconds per bucket for an answer from the ring: within C{points}, never finer
    than one sample."""
    return max(1, math.ceil(interval), math.ceil((end - start) / points))


def empty(names: Iterable[str], count: int) -> Values:
    """All-None lists for each name."""
    return {name: {field: [None] * count for field in FIELDS} for name in names}


class Buckets:
    """Min, mean and max per bucket, one sample at a time (so a caller can pause between)."""

    def __init__(self, names: Sequence[str], axis: Axis) -> None:
        self._names = list(names)
        self._axis = axis
        count = axis.count
        self._lows: dict[str, list[float | None]] = {name: [None] * count for name in names}
        self._highs: dict[str, list[float | None]] = {name: [None] * count for name in names}
        self._sums = {name: [0.0] * count for name in names}
        self._ns = {name: [0] * count for name in names}

    def add(self, when: float, numbers: Mapping[str, float]) -> None:
        """One sample; outside the axis it is ignored."""
        i = self._axis.index(when)
        if i is None:
            return
        for name in self._names:
            value = numbers.get(name)
            if value is None:
                continue
            lows = self._lows[name]
            low = lows[i]
            if low is None or value < low:
                lows[i] = value
            highs = self._highs[name]
            high = highs[i]
            if high is None or value > high:
                highs[i] = value
            self._sums[name][i] += value
            self._ns[name][i] += 1

    def values(self) -> Values:
        """Each name's lists; None where a bucket had no sample."""
        values: Values = {}
        for name in self._names:
            n = self._ns[name]
            s = self._sums[name]
            avg: list[float | None] = [s[i] / n[i] if n[i] else None for i in range(len(n))]
            values[name] = {"min": self._lows[name], "avg": avg, "max": self._highs[name]}
        return values


def bucket(samples: Iterable[Sample], names: Sequence[str], axis: Axis) -> Values:
    """Min, mean and max of each name's samples per bucket; None where a bucket has none."""
    buckets = Buckets(names, axis)
    for when, numbers in samples:
        buckets.add(when, numbers)
    return buckets.values()


def overlay(store: Values, ring: Values, axis: Axis, ring_from: float | None) -> Values:
    """The store's buckets, with the ring's where the ring covers them.

    A bucket that starts at or after C{ring_from} (the ring's first sample)
    is wholly in the ring: its numbers win.  A bucket the ring covers only in
    part (the restart's, or the ring's oldest) keeps the store's numbers when
    the store has some, else the ring's partial ones: never a gap where either
    side has data.
    """
    merged: Values = {}
    for name in set(store) | set(ring):
        mine = store.get(name) or empty([name], axis.count)[name]
        theirs = ring.get(name) or empty([name], axis.count)[name]
        out = {field: list(mine[field]) for field in FIELDS}
        # Only buckets where the ring has a number can change: for a long
        # range that is the last hour's few, so the rest is a copy.
        ring_avg, store_avg = theirs["avg"], mine["avg"]
        for i in [i for i, v in enumerate(ring_avg) if v is not None]:
            whole = ring_from is not None and axis.start + i * axis.step >= ring_from
            if whole or store_avg[i] is None:
                for field in FIELDS:
                    out[field][i] = theirs[field][i]
        merged[name] = out
    return merged


def axis_of(data: SeriesData) -> Axis:
    """The axis a store answer is on."""
    first = data.t[0] if data.t else data.start
    return Axis(float(first), data.step, len(data.t))
