"""Serve a folder of static files: hardened, cached and streamed.

L{StaticFiles} replaces L{twisted.web.static.File} for pistatsd's static root
because C{static.File} serves dotfiles, follows symlinks out of its root,
lists directories and does a lot of per-request work (L{FilePath} objects,
C{mimetypes} lookups, a cooperator-driven pull producer even for tiny files).

Design, in the order a request meets it:

 - Only C{GET} and C{HEAD}; anything else is a 405 with C{Allow}.
 - The URL segments (already percent-decoded by Twisted) are validated
   without touching the disk: no segment may be empty (except a trailing one,
   which means "directory"), start with C{.}, or contain C{/}, C{\\} or NUL.
 - The path is walked one C{lstat} per segment below the (real) root.  Only
   when a symlink is met is C{os.path.realpath} used, and the result must stay
   inside the real root (and contain no dot component), else 404.  A request
   for C{/small.html} therefore costs exactly one system call on a cache hit.
 - Small files (C{<= cache_file_max}) live in an LRU cache keyed by real path
   together with their precomputed headers; every hit is validated by the
   C{lstat} above (size, C{st_mtime_ns} and inode must match).
 - Larger files are streamed with C{os.pread} from a push producer registered
   on the request: the transport pauses it when its buffer is full, so a slow
   client never makes us buffer the file, and the descriptor is closed when
   the response ends or the client goes away.  No threads.
 - Validators: C{ETag} (from inode, size and C{mtime_ns}), C{Last-Modified},
   C{If-None-Match} (before C{If-Modified-Since}, RFC 9110 13.2.2), single
   byte ranges with C{If-Range}; multiple or malformed ranges get the whole
   file, as RFC 9110 14.2 allows.

Errors are short C{text/plain} bodies that never contain file data.
"""

from __future__ import annotations

import contextlib
import errno
import mimetypes
import os
import stat as _stat
from collections import OrderedDict
from collections.abc import Sequence
from urllib.parse import quote_from_bytes

from attrs import frozen
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.filepath import FilePath
from twisted.web.http import datetimeToString, stringToDatetime
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

__all__ = ["StaticFiles", "contentTypeFor"]

_log = Logger()

_S_ISDIR = _stat.S_ISDIR
_S_ISREG = _stat.S_ISREG
_S_ISLNK = _stat.S_ISLNK

#: Flags for opening a file to serve: never block (a fifo swapped in after the
#: C{stat} would otherwise hang the reactor), never follow a symlink swapped in
#: for the last component, never leak the descriptor into child processes.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC

#: errnos that mean "there is nothing to serve here" (client-caused): 404.
_NOT_FOUND_ERRNOS = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG, errno.ENXIO, errno.ENODEV}
)
#: errnos that mean "it exists but we may not read it": 403.
_FORBIDDEN_ERRNOS = frozenset({errno.EACCES, errno.EPERM})

#: Accounting overhead charged per cache entry on top of its body, so that
#: many empty files cannot grow the cache without bound.
_ENTRY_OVERHEAD = 256

_DEFAULT_TYPE = b"application/octet-stream"

#: Types we want regardless of what the system's mime.types says.
_TYPE_OVERRIDES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".ico": "image/x-icon",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".pdf": "application/pdf",
    ".gz": "application/gzip",
    ".zip": "application/zip",
}


def _buildTypeTable() -> dict[bytes, bytes]:
    """
    Build the extension -> C{Content-Type} table once, at import.

    Python's built-in table and the system's C{mime.types} files are merged
    (so unusual extensions still get a type), then L{_TYPE_OVERRIDES} wins.
    Every C{text/*} type gets C{charset=utf-8}.  Built once so that requests
    never call into C{mimetypes}.
    """
    db = mimetypes.MimeTypes()
    for name in mimetypes.knownfiles:
        if os.path.isfile(name):
            # A broken system file must not stop the daemon from starting.
            with contextlib.suppress(OSError, UnicodeDecodeError):
                db.read(name)
    merged: dict[str, str] = {}
    merged.update(db.types_map[False])
    merged.update(db.types_map[True])
    merged.update(_TYPE_OVERRIDES)
    table: dict[bytes, bytes] = {}
    for ext, ctype in merged.items():
        if ctype.startswith("text/") and "charset" not in ctype:
            ctype += "; charset=utf-8"
        table[ext.lower().encode("ascii", "replace")] = ctype.encode("ascii", "replace")
    return table


_TYPES = _buildTypeTable()


def contentTypeFor(name: bytes) -> bytes:
    """
    The C{Content-Type} to serve a file called C{name} (a basename) with.

    Public so that other resources (the dashboard's C{/}) agree with us.
    """
    dot = name.rfind(b".")
    if dot <= 0:
        return _DEFAULT_TYPE
    return _TYPES.get(name[dot:].lower(), _DEFAULT_TYPE)


class _RefusedError(Exception):
    """
    The request names something we will not serve; answer 404.
    """


@frozen
class _Meta:
    """
    What we know about one file version: its validators, precomputed header
    values and, for cached small files, its body.

    @ivar key: C{(size, mtime_ns, inode)}: a cached entry is valid while a
        fresh C{stat} gives the same triple.
    @ivar mtime: modification time in whole seconds, for C{If-Modified-Since}.
    @ivar body: the whole content for small files, else L{None}.
    """

    key: tuple[int, int, int]
    size: int
    mtime: int
    contentType: bytes
    etag: bytes
    lastModified: bytes
    body: bytes | None
    cost: int


def _metaFor(path: bytes, st: os.stat_result, body: bytes | None) -> _Meta:
    """
    Compute validators and header values for the file at C{path} from C{st}.
    """
    size = st.st_size if body is None else len(body)
    mtimeNs = st.st_mtime_ns
    ino = st.st_ino
    mtime = mtimeNs // 1_000_000_000
    return _Meta(
        key=(st.st_size, mtimeNs, ino),
        size=size,
        mtime=mtime,
        contentType=contentTypeFor(path[path.rfind(b"/") + 1 :]),
        etag=b'"%x-%x-%x"' % (ino, size, mtimeNs),
        lastModified=datetimeToString(mtime),
        body=body,
        cost=(0 if body is None else len(body)) + len(path) + _ENTRY_OVERHEAD,
    )


def _etagListMatches(values: Sequence[bytes], etag: bytes) -> bool:
    """
    Weak comparison of C{etag} against C{If-None-Match} field values.

    Each value may be C{*} or a comma-separated list of (possibly C{W/})
    entity tags.
    """
    for value in values:
        for candidate in value.split(b","):
            candidate = candidate.strip()
            if candidate == b"*":
                return True
            if candidate.startswith(b"W/"):
                candidate = candidate[2:]
            if candidate == etag:
                return True
    return False


#: Marker returned by L{_parseRange} for a syntactically valid but
#: unsatisfiable range.
_UNSATISFIABLE = (-1, -1)


def _parseRange(value: bytes, size: int) -> tuple[int, int] | None:
    """
    Parse a C{Range} header for a representation of C{size} bytes.

    @return: C{(first, last)} (inclusive) for one satisfiable byte range,
        L{_UNSATISFIABLE}, or L{None} to serve the whole file (malformed
        header, other unit, or several ranges: RFC 9110 14.2 lets us ignore
        them).
    """
    unit, sep, spec = value.partition(b"=")
    if not sep or unit.strip().lower() != b"bytes" or b"," in spec:
        return None
    first, dash, last = spec.strip().partition(b"-")
    if not dash:
        return None
    first = first.strip()
    last = last.strip()
    if not first:
        # Suffix range: the last N bytes.
        if not last.isdigit():
            return None
        n = int(last)
        if n == 0 or size == 0:
            return _UNSATISFIABLE
        return (max(0, size - n), size - 1)
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    if last:
        end = int(last)
        if end < start:
            return None
    else:
        end = size - 1
    if start >= size:
        return _UNSATISFIABLE
    return (start, min(end, size - 1))


def _setCommonHeaders(headers: Headers, meta: _Meta) -> None:
    """
    Set the headers every file response (200, 206, 304, 416) carries.
    """
    setRaw = headers.setRawHeaders
    setRaw(b"Accept-Ranges", [b"bytes"])
    setRaw(b"ETag", [meta.etag])
    setRaw(b"Last-Modified", [meta.lastModified])
    setRaw(b"X-Content-Type-Options", [b"nosniff"])


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


@implementer(IPushProducer)
class _FileProducer:
    """
    Stream C{length} bytes of an open file from C{offset} to a request.

    A push producer rather than a pull one: C{HTTPChannel} would wrap a pull
    producer in a cooperator that yields to the reactor between chunks (slow,
    and untestable without a reactor), while a push producer writes chunk
    after chunk until the transport, whose buffer is full, pauses it; it is
    resumed when that buffer has drained.  So at most about one chunk is
    buffered per slow client.

    The descriptor is closed on completion, on C{stopProducing} and when the
    request's C{notifyFinish} fails (client gone).
    """

    def __init__(self, request: Request, fd: int, offset: int, length: int, chunkSize: int) -> None:
        self._request = request
        self._fd = fd
        self._offset = offset
        self._remaining = length
        self._chunkSize = chunkSize
        self._paused = False
        self._producing = False

    @property
    def closed(self) -> bool:
        """
        Whether the file descriptor has been released.
        """
        return self._fd < 0

    def start(self) -> None:
        """
        Register on the request and write until paused or done.
        """
        try:
            self._request.registerProducer(self, True)
        except BaseException:
            self._close()
            raise
        self._request.notifyFinish().addErrback(self._connectionLost)
        self._produce()

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full: stop writing until resumed.
        """
        self._paused = True

    def resumeProducing(self) -> None:
        """
        The transport's buffer drained: write more.
        """
        self._paused = False
        self._produce()

    def stopProducing(self) -> None:
        """
        The connection is going away: release the file, write nothing more.
        """
        self._close()

    def _produce(self) -> None:
        """
        Write chunks until paused, finished or closed.

        Guarded against re-entry: a consumer may call C{resumeProducing}
        from inside our own C{write}.
        """
        if self._producing:
            return
        self._producing = True
        try:
            request = self._request
            while not self._paused and self._fd >= 0:
                data = os.pread(self._fd, min(self._chunkSize, self._remaining), self._offset)
                if not data:
                    # The file shrank under us; the promised Content-Length
                    # can no longer be honoured, so tell the client by closing.
                    _log.warn("static file truncated while being sent")
                    self._abort()
                    return
                self._offset += len(data)
                self._remaining -= len(data)
                request.write(data)
                if self._remaining <= 0:
                    self._close()
                    if request.channel is not None:
                        request.unregisterProducer()
                        request.finish()
                    return
        except Exception:
            _log.failure("streaming a static file failed")
            self._abort()
        finally:
            self._producing = False

    def _abort(self) -> None:
        """
        Give up on this response: release the file and drop the connection.
        """
        self._close()
        request = self._request
        if request.channel is not None:
            request.unregisterProducer()
            request.loseConnection()

    def _connectionLost(self, reason: object) -> None:
        """
        The client went away (C{notifyFinish} errback): release the file.
        """
        self._close()

    def _close(self) -> None:
        """
        Close the descriptor once.
        """
        fd = self._fd
        if fd >= 0:
            self._fd = -1
            os.close(fd)


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
        root: str | bytes | FilePath,
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
        real = os.path.realpath(os.fsencode(root))
        self._root = real
        #: Prefix every served path is built on (b"" when serving "/").
        self._base = real.rstrip(b"/")
        #: Every real path we serve must start with this.
        self._prefix = self._base + b"/"
        self._cacheBytes = cache_bytes
        self._cacheFileMax = cache_file_max
        self._chunkSize = chunk_size
        self._cache: OrderedDict[bytes, _Meta] = OrderedDict()
        self._cached = 0

    @property
    def root(self) -> bytes:
        """
        The real path of the directory served.
        """
        return self._root

    @property
    def cached_bytes(self) -> int:
        """
        Current size of the cache, as counted against C{cache_bytes}.
        """
        return self._cached

    @property
    def cached_paths(self) -> list[bytes]:
        """
        Real paths currently cached, least recently used first.
        """
        return list(self._cache)

    # Rendering

    def render(self, request: Request) -> int:  # type: ignore[override]
        """
        Answer C{request}; always finishes it (possibly later).
        """
        method = request.method
        if method != b"GET" and method != b"HEAD":
            return _error(request, 405, b"Method Not Allowed", allow=b"GET, HEAD")
        try:
            return self._serve(request)
        except _RefusedError:
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

        @raise _RefusedError: for names we never serve (404).
        @raise OSError: from the file system; mapped by C{render}.
        """
        segments = request.prepath + request.postpath
        trailing = not segments or segments[-1] == b""
        if trailing:
            segments = segments[:-1]
        for segment in segments:
            if (
                not segment
                or segment[0] == 0x2E  # "."
                or b"/" in segment
                or b"\\" in segment
                or b"\x00" in segment
            ):
                raise _RefusedError()

        path, st = self._resolve(self._base, segments)
        mode = st.st_mode
        if _S_ISDIR(mode):
            if not trailing:
                return self._redirectToDirectory(request, segments)
            path, st = self._resolve(path, [b"index.html"])
            mode = st.st_mode
        elif trailing:
            # "/file.txt/" names a directory that is not there.
            raise _RefusedError()
        if not _S_ISREG(mode):
            raise _RefusedError()

        if st.st_size <= self._cacheFileMax:
            meta = self._cache.get(path)
            if meta is not None:
                if meta.key == (st.st_size, st.st_mtime_ns, st.st_ino):
                    self._cache.move_to_end(path)
                    return self._respond(request, path, meta)
                self._evict(path)
            fd = self._open(path)
            try:
                body = os.pread(fd, st.st_size, 0)
            finally:
                os.close(fd)
            meta = _metaFor(path, st, body)
            if len(body) == st.st_size:
                self._store(path, meta)
            return self._respond(request, path, meta)

        return self._respond(request, path, _metaFor(path, st, None))

    def _resolve(self, base: bytes, segments: Sequence[bytes]) -> tuple[bytes, os.stat_result]:
        """
        Walk C{segments} below the real directory C{base}.

        One C{lstat} per segment; only a symlink triggers C{realpath}, whose
        result must stay inside the real root and contain no dot component.

        @return: the real path and its C{stat}.
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
                    raise _RefusedError()
                if b"/." in real[len(self._base) :]:
                    raise _RefusedError()
                return real, os.stat(real)
        # No symlink on the way: the last lstat is the file's own stat.
        return path, st

    def _open(self, path: bytes) -> int:
        """
        Open C{path} for reading without blocking or following a link.

        @raise _RefusedError: if what we opened is not a regular file after all.
        """
        fd = os.open(path, _OPEN_FLAGS)
        try:
            if not _S_ISREG(os.fstat(fd).st_mode):
                raise _RefusedError()
        except BaseException:
            os.close(fd)
            raise
        return fd

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

    def _respond(self, request: Request, path: bytes, meta: _Meta) -> int:
        """
        Send C{meta}'s file: 304, 416, 206 or 200, honouring HEAD.

        Everything that can fail (opening, a short read) happens before any
        response header is set, so a failure still gets a clean error page.
        Files not in C{meta.body} are opened only when their bytes (or, for
        HEAD, their readability) matter: never for a 304 or a 416.
        """
        requestHeaders = request.requestHeaders
        headers = request.responseHeaders

        if self._notModified(requestHeaders, meta):
            _setCommonHeaders(headers, meta)
            request.setResponseCode(304)
            request.write(b"")
            request.finish()
            return NOT_DONE_YET

        size = meta.size
        offset = 0
        length = size
        contentRange = None
        rangeHeader = requestHeaders.getRawHeaders(b"Range")
        if rangeHeader is not None and self._ifRangeAllows(requestHeaders, meta):
            wanted = _parseRange(rangeHeader[-1], size)
            if wanted is _UNSATISFIABLE:
                _setCommonHeaders(headers, meta)
                headers.setRawHeaders(b"Content-Range", [b"bytes */%d" % (size,)])
                return _error(request, 416, b"Range Not Satisfiable")
            if wanted is not None:
                offset, last = wanted
                length = last - offset + 1
                contentRange = b"bytes %d-%d/%d" % (offset, last, size)

        data = meta.body
        fd = -1
        if data is None:
            fd = self._open(path)
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

        _setCommonHeaders(headers, meta)
        if contentRange is not None:
            request.setResponseCode(206)
            headers.setRawHeaders(b"Content-Range", [contentRange])
        headers.setRawHeaders(b"Content-Type", [meta.contentType])
        headers.setRawHeaders(b"Content-Length", [b"%d" % (length,)])
        if data is not None:
            request.write(data)
            request.finish()
        else:
            _FileProducer(request, fd, offset, length, self._chunkSize).start()
        return NOT_DONE_YET

    @staticmethod
    def _notModified(requestHeaders: Headers, meta: _Meta) -> bool:
        """
        Whether the client's cached copy is current.

        C{If-None-Match} takes precedence over C{If-Modified-Since}
        (RFC 9110 13.2.2); an unparsable date is ignored.
        """
        inm = requestHeaders.getRawHeaders(b"If-None-Match")
        if inm is not None:
            return _etagListMatches(inm, meta.etag)
        ims = requestHeaders.getRawHeaders(b"If-Modified-Since")
        if ims is None:
            return False
        try:
            return meta.mtime <= stringToDatetime(ims[-1])
        except (ValueError, IndexError, KeyError, OverflowError):
            return False

    @staticmethod
    def _ifRangeAllows(requestHeaders: Headers, meta: _Meta) -> bool:
        """
        Whether C{If-Range} (if any) lets the C{Range} header apply.

        An entity tag must match strongly (a C{W/} tag never does), a date
        must equal our C{Last-Modified} exactly (RFC 9110 13.1.5).
        """
        values = requestHeaders.getRawHeaders(b"If-Range")
        if values is None:
            return True
        value = values[-1].strip()
        if value.startswith(b'"') or value.startswith(b"W/"):
            return value == meta.etag
        return value == meta.lastModified

    # Cache

    def _store(self, path: bytes, meta: _Meta) -> None:
        """
        Add C{meta} to the LRU cache, evicting the least recently used
        entries so the total never exceeds C{cache_bytes}.
        """
        cost = meta.cost
        if cost > self._cacheBytes:
            return
        cache = self._cache
        while cache and self._cached + cost > self._cacheBytes:
            _, old = cache.popitem(last=False)
            self._cached -= old.cost
        cache[path] = meta
        self._cached += cost

    def _evict(self, path: bytes) -> None:
        """
        Drop the (stale) entry for C{path}.
        """
        meta = self._cache.pop(path, None)
        if meta is not None:
            self._cached -= meta.cost
