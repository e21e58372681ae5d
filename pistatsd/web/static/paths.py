"""From URL segments to a regular file inside the served root, without ever leaving it.

The checks that keep dotfiles, symlinks pointing out of the root and
special files out of reach, in one place: the resource only asks for a
path and a C{stat}, or gets L{RefusedError}.
"""

from __future__ import annotations

import os
import stat as _stat
from collections.abc import Sequence

__all__ = ["RefusedError", "ServedRoot", "checkSegments", "openRegular"]

_S_ISREG = _stat.S_ISREG
_S_ISLNK = _stat.S_ISLNK

#: Flags for opening a file to serve: never block (a fifo swapped in after the
#: C{stat} would otherwise hang the reactor), never follow a symlink swapped in
#: for the last component, never leak the descriptor into child processes.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


class RefusedError(Exception):
    """
    The request names something we will not serve; answer 404.
    """


def checkSegments(segments: Sequence[bytes]) -> None:
    """
    Refuse, without touching the disk, any segment that is empty, starts
    with C{.}, or contains C{/}, C{\\} or NUL.

    The segments are already percent-decoded by Twisted, so an encoded
    C{%2F} or C{%00} is caught here too.

    @raise RefusedError: for the first bad segment.
    """
    for segment in segments:
        if (
            not segment
            or segment[0] == 0x2E  # "."
            or b"/" in segment
            or b"\\" in segment
            or b"\x00" in segment
        ):
            raise RefusedError()


def openRegular(path: bytes) -> int:
    """
    Open C{path} for reading without blocking or following a link.

    @raise RefusedError: if what we opened is not a regular file after all.
    @raise OSError: from the file system.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        if not _S_ISREG(os.fstat(fd).st_mode):
            raise RefusedError()
    except BaseException:
        os.close(fd)
        raise
    return fd


class ServedRoot:
    """
    The directory served, resolved with C{realpath} once: symlinks met below
    it are judged against that real root.
    """

    def __init__(self, root: bytes) -> None:
        real = os.path.realpath(root)
        self._root = real
        #: Prefix every served path is built on (b"" when serving "/").
        self._base = real.rstrip(b"/")
        #: Every real path we serve must start with this.
        self._prefix = self._base + b"/"

    @property
    def root(self) -> bytes:
        """
        The real path of the directory served.
        """
        return self._root

    @property
    def base(self) -> bytes:
        """
        The root without its trailing slash: what L{resolve} starts from.
        """
        return self._base

    def resolve(self, base: bytes, segments: Sequence[bytes]) -> tuple[bytes, os.stat_result]:
        """
        Walk C{segments} below the real directory C{base}.

        One C{lstat} per segment; only a symlink triggers C{realpath}, whose
        result must stay inside the real root and contain no dot component.

        @return: the real path and its C{stat}.
        @raise RefusedError: a symlink leads out of the root or to a dot name.
        @raise OSError: from the file system.
        """
        if not segments:
            return base, os.stat(base or b"/")
        path = base
        for i, segment in enumerate(segments):
            path = path + b"/" + segment
            st = os.lstat(path)
            if _S_ISLNK(st.st_mode):
                rest = segments[i + 1 :]
                if rest:
                    path = path + b"/" + b"/".join(rest)
                real = os.path.realpath(path)
                if real != self._root and not real.startswith(self._prefix):
                    raise RefusedError()
                if b"/." in real[len(self._base) :]:
                    raise RefusedError()
                return real, os.stat(real)
        # No symlink on the way: the last lstat is the file's own stat.
        return path, st
