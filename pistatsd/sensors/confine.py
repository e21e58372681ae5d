"""Keeping sensor files inside the allowed roots, at definition time and at every read.

A sensor path is user input that the daemon will open again and again for
months, so it is checked twice: when it is defined (a clear 400 for the
client) and on every read, because a symlink inside a root can be changed to
point elsewhere at any time.  A read resolves the path, checks the result,
opens it without following a final symlink and then asks the kernel which
file it really opened (C{/proc/self/fd}), so a swap between the check and
the open is caught too.

Reads run in a worker thread (see L{pistatsd.sensors.threads}): 1-Wire
sysfs files take most of a second to read.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable

from attrs import frozen

from pistatsd.sensors.model import InvalidSensor, check_path_syntax, parse_number

#: sysfs attributes are at most a page; anything longer is not a sensor.
MAX_READ = 4096

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not hang the open
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
)


class ReadError(Exception):
    """A sensor file could not be read; the message is safe to show to any client."""


def _strerror(error: OSError) -> str:
    """The system's words for an C{OSError}, without the path it was about."""
    return os.strerror(error.errno) if error.errno else str(error)


@frozen
class Confinement:
    """The resolved directories sensor files must live under."""

    roots: tuple[str, ...]

    @classmethod
    def of(cls, directories: Iterable[str]) -> Confinement:
        """Resolve the configured roots too: C{/tmp} may itself be a symlink."""
        roots = []
        for directory in directories:
            real = os.path.realpath(directory)
            if real not in roots:
                roots.append(real)
        return cls(tuple(roots))

    def contains(self, real: str) -> bool:
        """Whether a resolved path is a root or lies below one."""
        return any(real == root or real.startswith(root.rstrip("/") + "/") for root in self.roots)

    def resolve(self, path: str) -> str:
        """The real path behind C{path}; L{InvalidSensor} if it leaves the roots.

        Used at definition time, so the message may name the roots.
        """
        check_path_syntax(path)
        try:
            real = os.path.realpath(path)
        except OSError as e:
            raise InvalidSensor(f"path {path!r} cannot be resolved: {_strerror(e)}") from None
        if not self.contains(real):
            raise InvalidSensor(
                f"path {path!r} resolves outside the allowed sensor roots ({', '.join(self.roots)})"
            )
        return real

    def read_number(self, path: str) -> float:
        """Read the number in a confined file; L{ReadError} on any problem.

        Blocking: run it in a worker thread, never in the reactor thread.
        """
        try:
            real = os.path.realpath(path)
        except OSError as e:
            raise ReadError(f"path cannot be resolved: {_strerror(e)}") from None
        if not self.contains(real):
            raise ReadError("path resolves outside the allowed sensor roots")
        try:
            fd = os.open(real, _OPEN_FLAGS)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise ReadError("path changed while being opened") from None
            raise ReadError(_strerror(e)) from None
        try:
            opened = _opened_path(fd)
            if opened is not None and not self.contains(opened):
                raise ReadError("path resolves outside the allowed sensor roots")
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ReadError("not a regular file")
            data = os.read(fd, MAX_READ + 1)
        except OSError as e:
            raise ReadError(_strerror(e)) from None
        finally:
            os.close(fd)
        if len(data) > MAX_READ:
            raise ReadError(f"file is larger than {MAX_READ} bytes")
        try:
            return parse_number(data.decode("ascii"))
        except UnicodeDecodeError:
            raise ReadError("not a number (not ASCII text)") from None
        except ValueError as e:
            raise ReadError(str(e)) from None


def _opened_path(fd: int) -> str | None:
    """The path the kernel says C{fd} refers to, where the system can tell (Linux)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
