"""Root without its power over file modes, for tests that need a read to be refused.

Root reads any file through C{CAP_DAC_OVERRIDE} (and C{CAP_DAC_READ_SEARCH});
with both out of the effective set, a mode of 0 stops it like anyone else.
Capabilities belong to a thread, so this affects only the calling thread, and
the permitted set is kept, so they come back afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2
_OVERRIDES = (1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH)


class _Header(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _Data(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _call(name: str, header: _Header, data: ctypes.Array[_Data]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(ctypes.byref(header), data) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}: {os.strerror(errno)}")


@contextlib.contextmanager
def file_modes_bind_root() -> Iterator[None]:
    """For the block, file permissions apply to this thread even when it runs as root.

    For anyone else nothing changes: they never had the overrides.
    """
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    _call("capget", header, data)
    saved = data[0].effective
    data[0].effective = saved & ~_OVERRIDES
    _call("capset", header, data)
    try:
        yield
    finally:
        data[0].effective = saved
        _call("capset", header, data)
