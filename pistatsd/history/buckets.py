"""Roll-ups accumulated in memory on the reactor, between two flushes.

Each sample adds its numbers to the open bucket of every resolution: a dict
update per series and resolution, nothing else.  A flush takes everything
accumulated so far (L{Buckets.take}) and the store combines it with what is
already stored; a failed flush gives it back (L{Buckets.give_back}).  Memory
is bounded: past C{limit} entries the oldest of the finest resolution go
first (they are also the first the store would prune).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pistatsd.history.api import Resolution

#: (step, bucket start, series name)
Key = tuple[int, int, str]
#: [min, sum, max, n]
Part = list[float]


def combine(into: Part, other: Part) -> None:
    """Fold C{other} into C{into} (both C{[min, sum, max, n]})."""
    if other[0] < into[0]:
        into[0] = other[0]
    into[1] += other[1]
    if other[2] > into[2]:
        into[2] = other[2]
    into[3] += other[3]


class Buckets:
    """Bucket parts not yet written, for every resolution."""

    def __init__(
        self, resolutions: Iterable[Resolution], limit: int, deferred: Iterable[int] = ()
    ) -> None:
        """
        @param deferred: steps whose open bucket stays here until it closes
            (the store rebuilds it from a finer resolution after a restart).
        """
        self.steps = tuple(r.step for r in resolutions)
        self.limit = limit
        self.deferred = frozenset(deferred)
        #: The timestamp of the last sample added: it says which buckets are open.
        self.latest: float | None = None
        self.parts: dict[Key, Part] = {}
        #: Entries dropped at the limit, since start.
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.parts)

    def add(self, timestamp: float, numbers: Mapping[str, float]) -> int:
        """Add one sample; returns how many entries were dropped at the limit."""
        self.latest = timestamp
        parts = self.parts
        for step in self.steps:
            bucket = int(timestamp // step) * step
            for name, value in numbers.items():
                part = parts.get((step, bucket, name))
                if part is None:
                    parts[(step, bucket, name)] = [value, value, value, 1]
                else:
                    if value < part[0]:
                        part[0] = value
                    part[1] += value
                    if value > part[2]:
                        part[2] = value
                    part[3] += 1
        return self._bound()

    def take(self) -> dict[Key, Part]:
        """Everything accumulated but the open buckets of deferred steps."""
        taken, self.parts = self.parts, {}
        if self.deferred and self.latest is not None:
            latest = self.latest
            for key in [k for k in taken if k[0] in self.deferred]:
                if key[1] == int(latest // key[0]) * key[0]:
                    self.parts[key] = taken.pop(key)
        return taken

    def give_back(self, taken: Mapping[Key, Part]) -> int:
        """Put back what a failed flush took (combined with anything newer);
        returns how many entries were dropped at the limit."""
        newer, self.parts = self.parts, dict(taken)
        for key, part in newer.items():
            old = self.parts.get(key)
            if old is None:
                self.parts[key] = part
            else:
                combine(old, part)
        return self._bound()

    def _bound(self) -> int:
        if len(self.parts) <= self.limit:
            return 0
        # A tenth more than needed, so that a full buffer is not sorted on
        # every sample.  Finest resolution first, oldest bucket first.
        excess = len(self.parts) - self.limit + self.limit // 10
        victims = sorted(self.parts, key=lambda key: (key[0], key[1]))[:excess]
        for key in victims:
            del self.parts[key]
        self.dropped += excess
        return excess
