"""Small helpers shared by the machine collectors: reading sysfs/procfs, logging troubles once.

Every collector reads a handful of tiny kernel files per sample.  Those reads
are a few microseconds each and never wait on a device (sysfs and procfs are
generated in memory), so they run on the reactor thread.  A missing file is a
normal answer on many machines (no Wi-Fi, no fan, not a Raspberry Pi), so the
helpers return C{None} for it instead of raising; what a collector does with
that is its own business.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.logger import Logger

_log = Logger()


def read_text(path: str | os.PathLike[str]) -> str | None:
    """The stripped text of C{path}, or C{None} when it is missing or unreadable.

    C{OSError} covers every way a sysfs read fails: a file that vanished with
    its device (C{ENOENT}, C{ENODEV}), one a driver refuses to answer
    (C{EINVAL} for an interface's C{speed} while it is down, C{EIO}), one
    the hardened unit hides (C{EACCES}).  Plain C{os.open}/C{os.read}: a
    sample reads dozens of these files, and Python's buffered text files
    cost several times more to open than the kernel takes to answer.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks).decode("ascii", errors="replace").strip()


def read_int(path: str | os.PathLike[str]) -> int | None:
    """The integer in C{path} (decimal), or C{None} when missing, unreadable or not a number."""
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def rate(before: int | None, after: int | None, elapsed: float | None) -> float | None:
    """C{(after - before) / elapsed}, or C{None} when it cannot be known.

    Unknown means: no previous counter (the first sample), no window (a
    clock that did not move), or a counter that went backwards.  A counter
    goes backwards when it wraps (32-bit kernels keep 32-bit counters), when
    its device is re-created (a USB NIC re-plugged) or reset: none of those
    can be told apart from the numbers alone, so none is guessed at.  A rate
    is therefore never negative and never a spike.
    """
    if before is None or after is None or elapsed is None or elapsed <= 0 or after < before:
        return None
    return round((after - before) / elapsed, 1)


class Troubles:
    """Logs each kind of trouble once per episode: when it starts and when it ends.

    A sampler runs every second; a missing or broken source would otherwise
    log the same line 3600 times an hour.  Each trouble has a key; L{warn}
    logs the first time the key goes wrong, L{clear} ends the episode (with
    one line saying it works again, when it was a warning).
    """

    def __init__(self, owner: str) -> None:
        """
        @param owner: what the collector reports (C{"net"}, C{"disk_io"}),
            named in every line.
        """
        self._owner = owner
        self._active: dict[str, bool] = {}

    def warn(self, key: str, message: str, **fields: Any) -> None:
        """A broken source: a warning the first time, silence after."""
        if key not in self._active:
            self._active[key] = True
            _log.warn("{part}: " + message, part=self._owner, **fields)

    def note(self, key: str, message: str, **fields: Any) -> None:
        """An expected absence (no such hardware here): one info line, then silence."""
        if key not in self._active:
            self._active[key] = False
            _log.info("{part}: " + message, part=self._owner, **fields)

    def failure(self, key: str, message: str) -> None:
        """An unexpected exception (call from an C{except} block): one traceback per episode."""
        if key not in self._active:
            self._active[key] = True
            _log.failure("{part}: " + message, part=self._owner)

    def clear(self, key: str) -> None:
        """The source works (again): the next trouble is a new episode."""
        if self._active.pop(key, False):
            _log.info("{part}: {key} works again", part=self._owner, key=key)

    def active(self, key: str) -> bool:
        """Whether C{key} is in an episode of trouble now (for tests and callers)."""
        return key in self._active
