"""What one version of a file is: its validators and header values, computed once per C{stat}.

Kept apart from the resource so that the cache, the conditional-request
checks and the response all read the same precomputed values.
"""

from __future__ import annotations

import os

from attrs import frozen
from twisted.web.http import datetimeToString
from twisted.web.http_headers import Headers

from pistatsd.web.static.contenttypes import contentTypeFor

__all__ = ["ENTRY_OVERHEAD", "FileMeta", "metaFor", "setCommonHeaders"]

ENTRY_OVERHEAD = 256
"""Accounting overhead charged per cache entry on top of its body, so that
many empty files cannot grow the cache without bound."""


@frozen
class FileMeta:
    """
    What we know about one file version: its validators, precomputed header
    values and, for cached small files, its body.

    @ivar key: C{(size, mtime_ns, inode)}: a cached entry is valid while a
        fresh C{stat} gives the same triple.
    @ivar mtime: modification time in whole seconds, for C{If-Modified-Since}.
    @ivar body: the whole content for small files, else L{None}.
    @ivar cost: what the entry counts against the cache's byte budget.
    """

    key: tuple[int, int, int]
    size: int
    mtime: int
    contentType: bytes
    etag: bytes
    lastModified: bytes
    body: bytes | None
    cost: int


def metaFor(path: bytes, st: os.stat_result, body: bytes | None) -> FileMeta:
    """
    Compute validators and header values for the file at C{path} from C{st}.
    """
    size = st.st_size if body is None else len(body)
    mtimeNs = st.st_mtime_ns
    ino = st.st_ino
    mtime = mtimeNs // 1_000_000_000
    return FileMeta(
        key=(st.st_size, mtimeNs, ino),
        size=size,
        mtime=mtime,
        contentType=contentTypeFor(path[path.rfind(b"/") + 1 :]),
        etag=b'"%x-%x-%x"' % (ino, size, mtimeNs),
        lastModified=datetimeToString(mtime),
        body=body,
        cost=(0 if body is None else len(body)) + len(path) + ENTRY_OVERHEAD,
    )


def setCommonHeaders(headers: Headers, meta: FileMeta) -> None:
    """
    Set the headers every file response (200, 206, 304, 416) carries.
    """
    setRaw = headers.setRawHeaders
    setRaw(b"Accept-Ranges", [b"bytes"])
    setRaw(b"ETag", [meta.etag])
    setRaw(b"Last-Modified", [meta.lastModified])
    setRaw(b"X-Content-Type-Options", [b"nosniff"])
