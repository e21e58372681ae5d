"""Durable file replacement, for the few files pistatsd writes itself."""

from __future__ import annotations

import contextlib
import os
import tempfile


def write_atomically(path: str, data: bytes, mode: int) -> None:
    """Replace C{path} with C{data}: a synced temporary file, renamed over it.

    A crash or power cut leaves the old file or the new one, never a mix; the
    new file has permission bits C{mode} from its first byte (a private key is
    never readable by others, even briefly).  On failure the temporary file is
    removed and C{OSError} raised, the old file untouched.
    """
    directory, name = os.path.split(path)
    fd, temporary = tempfile.mkstemp(dir=directory or ".", prefix=f".{name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory or ".")


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable; a filesystem that cannot sync a directory is fine."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
