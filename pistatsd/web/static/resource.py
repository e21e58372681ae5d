"""The static-files resource: maps a request to a file below the root and answers it.

See the package docstring for the design.  This module holds the request
flow (method, directory redirect, cache lookup, the choice between 304, 416,
206 and 200); the path checks, types, validators, preconditions, the cache
and streaming live in their own modules.
"""

from __future__ import annotations

import errno
import os
import stat as _stat
from collections.abc import Sequence
from urllib.parse import quote_from_bytes

from twisted.logger import Logger
from twisted.python.filepath import FilePath
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from pistatsd.web.static.cache import FileCache
from pistatsd.web.static.conditional import UNSATISFIABLE, ifRangeAllows, notModified, parseRange
from pistatsd.web.static.meta import FileMeta, metaFor, setCommonHeaders
from pistatsd.web.static.paths import RefusedError, ServedRoot, checkSegments, openRegular
from pistatsd.web.static.producer import FileProducer

__all__ = ["StaticFiles"]

_log = Logger()

_S_ISDIR = _stat.S_ISDIR
_S_ISREG = _stat.S_ISREG

#: errnos that mean "there is nothing to serve here" (client-caused): 404.
_NOT_FOUND_ERRNOS = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG, errno.ENXIO, errno.ENODEV}
)
#: errnos that mean "it exists but we may not read it": 403.
_FORBIDDEN_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


def _error(request: Request, code: int, message: bytes, allow: bytes | None = None) -> int:
    """
    Finish C{request} with a short C{text/plain} error.

    The body is fixed text chosen by us: never file data, never a traceback.

    @return: L{NOT_DONE_YET}, for C{render} to return.
    """
    body = message + b"\n"
    request.setResponseCode(code)
    headers = request.responseHeaders
    headers.setRawHeaders(b"Content-Type", [b"text/plain; charset=utf-8"])
    headers.setRawHeaders(b"Content-Length", [b"%d" % (len(body),)])
    headers.setRawHeaders(b"X-Content-Type-Options", [b"nosniff"])
    if allow is not None:
        headers.setRawHeaders(b"Allow", [allow])
    request.write(body)
    request.finish()
    return NOT_DONE_YET


class StaticFiles(Resource):
    """
    Serve the files below C{root}, for every URL the site root does not claim.

    The site's root resource returns this (a leaf) from C{getChild}, so the
    file is named by I{all} of the request's segments,
    C{request.prepath + request.postpath}.  It also works as a L{Site}'s
    root resource.  It must not be mounted below a prefix (C{/static/...}):
    the prefix would be looked up as a directory of C{root}.

    @param root: the directory to serve.  Resolved with C{realpath} once,
        here: symlinks are judged against that real root.
    @param cache_bytes: upper bound of the small-file cache, counting bodies
        plus a small fixed overhead per entry; 0 disables caching.
    @param cache_file_max: files up to this size are read whole (and cached
        when they fit); larger files are streamed.
    @param chunk_size: bytes read and written per step when streaming.  The
        default, 128 KiB, is Twisted's per-C{send} limit: one chunk fills
        the transport's buffer (so it pauses us) and is sent without being
        copied again.  Measured on loopback it needs ~20% less CPU per MiB
        than 256 KiB, whose buffers land above glibc's C{mmap} threshold and
        pay page faults on every read.
    """

    isLeaf = True

    def __init__(
        self,
        root: str | bytes | FilePath[str] | FilePath[bytes],
        *,
        cache_bytes: int = 8 * 1024 * 1024,
        cache_file_max: int = 256 * 1024,
        chunk_size: int = 128 * 1024,
    ) -> None:
        super().__init__()
        if isinstance(root, FilePath):
            root = root.path
        if cache_bytes < 0 or cache_file_max < 0 or chunk_size <= 0:
            raise ValueError("cache sizes must be >= 0 and chunk_size > 0")
        self._served = ServedRoot(os.fsencode(root))
        self._cacheFileMax = cache_file_max
        self._chunkSize = chunk_size
        self._cache = FileCache(cache_bytes)

    @property
    def root(self) -> bytes:
        """
        The real path of the directory served.
        """
        return self._served.root

    @property
    def cached_bytes(self) -> int:
        """
        Current size of the cache, as counted against C{cache_bytes}.
        """
        return self._cache.usedBytes

    @property
    def cached_paths(self) -> list[bytes]:
        """
        Real paths currently cached, least recently used first.
        """
        return self._cache.paths

    # Rendering

    def render(self, request: Request) -> int:
        """
        Answer C{request}; always finishes it (possibly later).
        """
        method = request.method
        if method != b"GET" and method != b"HEAD":
            return _error(request, 405, b"Method Not Allowed", allow=b"GET, HEAD")
        try:
            return self._serve(request)
        except RefusedError:
            return _error(request, 404, b"Not Found")
        except OSError as e:
            if e.errno in _NOT_FOUND_ERRNOS:
                return _error(request, 404, b"Not Found")
            if e.errno in _FORBIDDEN_ERRNOS:
                return _error(request, 403, b"Forbidden")
            _log.failure("serving a static file failed")
            return _error(request, 500, b"Internal Server Error")

    def _serve(self, request: Request) -> int:
        """
        Map the request to a regular file and send it, or raise.

        @raise RefusedError: for names we never serve (404).
        @raise OSError: from the file system; mapped by C{render}.
        """
        assert request.prepath is not None and request.postpath is not None  # set by the site
        segments = request.prepath + request.postpath
        trailing = not segments or segments[-1] == b""
        if trailing:
            segments = segments[:-1]
        checkSegments(segments)

        served = self._served
        path, st = served.resolve(served.base, segments)
        mode = st.st_mode
        if _S_ISDIR(mode):
            if not trailing:
                return self._redirectToDirectory(request, segments)
            path, st = served.resolve(path, [b"index.html"])
            mode = st.st_mode
        elif trailing:
            # "/file.txt/" names a directory that is not there.
            raise RefusedError()
        if not _S_ISREG(mode):
            raise RefusedError()

        if st.st_size <= self._cacheFileMax:
            meta = self._cache.get(path)
            if meta is not None:
                if meta.key == (st.st_size, st.st_mtime_ns, st.st_ino):
                    self._cache.touch(path)
                    return self._respond(request, path, meta)
                self._cache.evict(path)
            fd = openRegular(path)
            try:
                body = os.pread(fd, st.st_size, 0)
            finally:
                os.close(fd)
            meta = metaFor(path, st, body)
            if len(body) == st.st_size:
                self._cache.store(path, meta)
            return self._respond(request, path, meta)

        return self._respond(request, path, metaFor(path, st, None))

    def _redirectToDirectory(self, request: Request, segments: Sequence[bytes]) -> int:
        """
        301 to the slash form of a directory URL, keeping the query string.

        The C{Location} is relative (C{./name/}), so it is right whatever
        host or scheme the client used and cannot become an open redirect.
        """
        location = b"./" + quote_from_bytes(segments[-1], safe="").encode("ascii") + b"/"
        _, sep, query = request.uri.partition(b"?")
        if sep:
            location += b"?" + query
        request.responseHeaders.setRawHeaders(b"Location", [location])
        return _error(request, 301, b"Moved Permanently")

    # Responses

    def _respond(self, request: Request, path: bytes, meta: FileMeta) -> int:
        """
        Send C{meta}'s file: 304, 416, 206 or 200, honouring HEAD.

        Everything that can fail (opening, a short read) happens before any
        response header is set, so a failure still gets a clean error page.
        Files not in C{meta.body} are opened only when their bytes (or, for
        HEAD, their readability) matter: never for a 304 or a 416.
        """
        requestHeaders = request.requestHeaders
        headers = request.responseHeaders

        if notModified(requestHeaders, meta):
            setCommonHeaders(headers, meta)
            request.setResponseCode(304)
            request.write(b"")
            request.finish()
            return NOT_DONE_YET

        size = meta.size
        offset = 0
        length = size
        contentRange = None
        rangeHeader = requestHeaders.getRawHeaders(b"Range")
        if rangeHeader is not None and ifRangeAllows(requestHeaders, meta):
            wanted = parseRange(rangeHeader[-1], size)
            if wanted is UNSATISFIABLE:
                setCommonHeaders(headers, meta)
                headers.setRawHeaders(b"Content-Range", [b"bytes */%d" % (size,)])
                return _error(request, 416, b"Range Not Satisfiable")
            if wanted is not None:
                offset, last = wanted
                length = last - offset + 1
                contentRange = b"bytes %d-%d/%d" % (offset, last, size)

        data = meta.body
        fd = -1
        if data is None:
            fd = openRegular(path)
            if request.method == b"HEAD" or length == 0 or length <= self._chunkSize:
                # One read (or none) is all it takes; no producer needed.
                try:
                    if request.method == b"HEAD":
                        data = b""
                    else:
                        data = os.pread(fd, length, offset)
                        if len(data) != length:
                            _log.warn("static file changed while being read")
                            return _error(request, 503, b"Service Unavailable")
                finally:
                    os.close(fd)
                    fd = -1
        elif length != size:
            data = data[offset : offset + length]

        setCommonHeaders(headers, meta)
        if contentRange is not None:
            request.setResponseCode(206)
            headers.setRawHeaders(b"Content-Range", [contentRange])
        headers.setRawHeaders(b"Content-Type", [meta.contentType])
        headers.setRawHeaders(b"Content-Length", [b"%d" % (length,)])
        if data is not None:
            request.write(data)
            request.finish()
        else:
            FileProducer(request, fd, offset, length, self._chunkSize).start()
        return NOT_DONE_YET
