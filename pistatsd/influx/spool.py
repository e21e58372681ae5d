"""Unsent points on disk: a bounded, append-only line-protocol file in the state dir.

The spool is a FIFO made of one file and a read offset.  Points that waited
too long in memory (and whatever is left at shutdown) are appended at the
end; replay reads batches from the offset and advances it once InfluxDB has
them; when everything is delivered the file is removed.  Writes are rare
(at most once a minute, and at shutdown) and batched, which is what an SD card
wants; the file is plain line protocol, one point per line, so a person can
read it or load it with C{influx -import}.

The read offset lives in memory only.  A restart in the middle of a replay
sends the already delivered head again, which InfluxDB absorbs (same series and
timestamp is the same point); at a clean stop the delivered head is cut off.

Size is capped: when an append would pass the cap, the oldest lines are cut
(counted as dropped) down to three quarters of the cap, so the file is
rewritten rarely rather than on every append.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from attrs import define, field, frozen
from twisted.logger import Logger

from pistatsd.files import write_atomically
from pistatsd.influx.lineprotocol import is_valid_line

_log = Logger()

SPOOL_NAME = "influx-spool.lp"
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
_CHUNK = 256 * 1024


@frozen
class SpoolBatch:
    """Lines read from the spool, and where the reading stopped.

    Nothing is consumed until L{Spool.commit}: a batch that fails to send is
    read again next time.
    """

    lines: list[str]
    start: int
    end: int
    corrupt: int
    """Damaged lines skipped inside this batch (counted when it is committed)."""
    consumed: int
    """Lines (valid and corrupt) between C{start} and C{end}."""
    generation: int = 0
    """Which rewrite of the file the offsets refer to."""


@define
class Spool:
    """The spool file at C{path}; all I/O is synchronous, small and local.

    Every method catches its own C{OSError}: a full card or a read-only state
    directory costs the spooled points (counted by the caller through the
    return values), never the daemon.
    """

    path: str
    max_bytes: int = DEFAULT_MAX_BYTES
    pending: int = field(default=0, init=False)
    """Lines in the file not yet delivered (corrupt ones included until met)."""
    _offset: int = field(default=0, init=False)
    _size: int = field(default=0, init=False)
    _opened: bool = field(default=False, init=False)
    _generation: int = field(default=0, init=False)
    torn: int = field(default=0, init=False)
    """Lines found torn (cut off) by the last L{open}."""

    def open(self) -> int:
        """Find what a previous run left; the number of lines waiting for replay.

        Creates the directory if missing.  A last line without its newline
        was torn by a crash in the middle of an append: it is cut off (and
        counted in L{torn}), since a cut timestamp can still look valid.
        """
        self._opened = True
        self._offset = 0
        self._size = 0
        self.pending = 0
        self.torn = 0
        try:
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            with open(self.path, "rb") as f:
                last_newline = -1
                while chunk := f.read(_CHUNK):
                    self.pending += chunk.count(b"\n")
                    newline = chunk.rfind(b"\n")
                    if newline >= 0:
                        last_newline = self._size + newline
                    self._size += len(chunk)
            if last_newline + 1 < self._size:
                os.truncate(self.path, last_newline + 1)
                self._size = last_newline + 1
                self.torn = 1
        except FileNotFoundError:
            return 0
        except OSError as e:
            _log.warn("InfluxDB spool {path} cannot be read: {error}", path=self.path, error=e)
            return 0
        if self._size == 0:
            self._remove()
            return 0
        return self.pending

    def append(self, lines: Sequence[str]) -> int:
        """Add lines at the end (one write); returns how many old lines were dropped.

        Lines that do not fit even in an empty spool are dropped, oldest first,
        and included in the returned count.

        @raise OSError: the file cannot be written (nothing was added); the
            caller decides whether the lines can stay in memory.
        """
        if not lines:
            return 0
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        dropped = 0
        if len(data) > self.max_bytes:
            cut = _line_boundary(data, len(data) - self.max_bytes)
            dropped += data.count(b"\n", 0, cut)
            data = data[cut:]
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
        if self._size - self._offset + len(data) > self.max_bytes:
            dropped += self._compact(keep=max(0, self.max_bytes * 3 // 4 - len(data)), data=data)
        else:
            self._write(data, "ab")
            self._size += len(data)
        self.pending += data.count(b"\n")
        return dropped

    def read(self, max_lines: int) -> SpoolBatch:
        """Up to C{max_lines} valid lines from the read offset, skipping corrupt ones."""
        lines: list[str] = []
        corrupt = consumed = 0
        position = self._offset
        if self.pending == 0 or self._size <= position:
            return SpoolBatch(lines, position, position, 0, 0, self._generation)
        try:
            with open(self.path, "rb") as f:
                f.seek(position)
                buffer = b""
                while len(lines) < max_lines:
                    chunk = f.read(_CHUNK)
                    if not chunk:
                        break
                    buffer += chunk
                    start = 0
                    while len(lines) < max_lines:
                        newline = buffer.find(b"\n", start)
                        if newline < 0:
                            break
                        raw = buffer[start:newline]
                        start = newline + 1
                        position += len(raw) + 1
                        consumed += 1
                        line = _decode(raw)
                        if line is None or not is_valid_line(line):
                            if raw.strip():
                                corrupt += 1
                            continue
                        lines.append(line)
                    buffer = buffer[start:]
        except OSError as e:
            _log.warn("InfluxDB spool {path} cannot be read: {error}", path=self.path, error=e)
        return SpoolBatch(lines, self._offset, position, corrupt, consumed, self._generation)

    def commit(self, batch: SpoolBatch) -> None:
        """The batch is delivered (or given up): move past it; remove the file when done."""
        if batch.generation != self._generation or batch.start != self._offset:
            return  # the file was rewritten in between: the batch is stale
        self._offset = batch.end
        self.pending = max(0, self.pending - batch.consumed)
        if self._offset >= self._size:
            self._remove()

    def close(self) -> None:
        """At a clean stop: cut the delivered head so the next start does not resend it."""
        if self._offset == 0 or not self._opened:
            return
        if self._offset >= self._size:
            self._remove()
            return
        try:
            self._compact(keep=self._size - self._offset, data=b"")
        except OSError as e:
            _log.warn("InfluxDB spool {path} cannot be rewritten: {error}", path=self.path, error=e)

    def _compact(self, keep: int, data: bytes) -> int:
        """Rewrite the file as its newest C{keep} undelivered bytes (whole lines)
        plus C{data}; the number of lines dropped.  Temp file and rename: a
        crash leaves the old file or the new one, never half of each."""
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            old = f.read()
        cut = _line_boundary(old, len(old) - keep) if len(old) > keep else 0
        dropped = old.count(b"\n", 0, cut)
        content = old[cut:] + data
        write_atomically(self.path, content, 0o600)
        self._generation += 1
        self._offset = 0
        self._size = len(content)
        self.pending = max(0, self.pending - dropped)
        return dropped

    def _write(self, data: bytes, mode: str) -> None:
        """One write, the file readable by its owner only (points can be private)."""
        target = self.path
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "ab" else os.O_TRUNC)
        fd = os.open(target, flags, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def discard(self) -> int:
        """Give up on a spool that cannot be read: remove it; the lines lost."""
        lost = self.pending
        self._remove()
        return lost

    def _remove(self) -> None:
        """Everything is delivered: no file left behind."""
        self._generation += 1
        self._offset = 0
        self._size = 0
        self.pending = 0
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            _log.warn("InfluxDB spool {path} cannot be removed: {error}", path=self.path, error=e)


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _line_boundary(data: bytes, position: int) -> int:
    """The first line start at or after C{position} (C{len(data)} if none)."""
    if position <= 0 or data[position - 1 : position] == b"\n":
        return max(0, position)
    newline = data.find(b"\n", position)
    return len(data) if newline < 0 else newline + 1
