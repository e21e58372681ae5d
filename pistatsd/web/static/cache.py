"""The small-file cache: an LRU of L{FileMeta} (bodies included) bounded by bytes, not entries."""

from __future__ import annotations

from collections import OrderedDict

from pistatsd.web.static.meta import FileMeta

__all__ = ["FileCache"]


class FileCache:
    """
    Small files and their precomputed headers, keyed by real path.

    Bounded by the sum of the entries' C{cost} (body plus a fixed
    overhead), so that neither a few large files nor many empty ones can
    grow it past C{maxBytes}.  Validity is the caller's business: it
    compares L{FileMeta.key} with a fresh C{stat} and calls L{evict}.
    """

    def __init__(self, maxBytes: int) -> None:
        self._maxBytes = maxBytes
        self._entries: OrderedDict[bytes, FileMeta] = OrderedDict()
        self._used = 0

    @property
    def usedBytes(self) -> int:
        """
        Current size, as counted against C{maxBytes}.
        """
        return self._used

    @property
    def paths(self) -> list[bytes]:
        """
        Paths currently cached, least recently used first.
        """
        return list(self._entries)

    def get(self, path: bytes) -> FileMeta | None:
        """
        The entry for C{path}, if any; it does not count as a use (see L{touch}).
        """
        return self._entries.get(path)

    def touch(self, path: bytes) -> None:
        """
        Mark C{path} as the most recently used.
        """
        self._entries.move_to_end(path)

    def store(self, path: bytes, meta: FileMeta) -> None:
        """
        Add C{meta}, evicting the least recently used entries so the total
        never exceeds C{maxBytes}; an entry larger than that is not kept.
        """
        cost = meta.cost
        if cost > self._maxBytes:
            return
        entries = self._entries
        while entries and self._used + cost > self._maxBytes:
            _, old = entries.popitem(last=False)
            self._used -= old.cost
        entries[path] = meta
        self._used += cost

    def evict(self, path: bytes) -> None:
        """
        Drop the (stale) entry for C{path}, if any.
        """
        meta = self._entries.pop(path, None)
        if meta is not None:
            self._used -= meta.cost
