"""Conditional and range requests (RFC 9110 13 and 14), judged against a L{FileMeta}.

Pure functions of the request headers and the file's validators: no I/O,
so the resource can decide on a 304 or a 416 before it opens anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.web.http import stringToDatetime
from twisted.web.http_headers import Headers

from pistatsd.web.static.meta import FileMeta

__all__ = ["UNSATISFIABLE", "etagListMatches", "ifRangeAllows", "notModified", "parseRange"]

UNSATISFIABLE = (-1, -1)
"""Returned by L{parseRange} for a syntactically valid but unsatisfiable range."""


def etagListMatches(values: Sequence[bytes], etag: bytes) -> bool:
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


def parseRange(value: bytes, size: int) -> tuple[int, int] | None:
    """
    Parse a C{Range} header for a representation of C{size} bytes.

    @return: C{(first, last)} (inclusive) for one satisfiable byte range,
        L{UNSATISFIABLE}, or L{None} to serve the whole file (malformed
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
            return UNSATISFIABLE
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
        return UNSATISFIABLE
    return (start, min(end, size - 1))


def notModified(requestHeaders: Headers, meta: FileMeta) -> bool:
    """
    Whether the client's cached copy is current.

    C{If-None-Match} takes precedence over C{If-Modified-Since}
    (RFC 9110 13.2.2); an unparsable date is ignored.
    """
    inm = requestHeaders.getRawHeaders(b"If-None-Match")
    if inm is not None:
        return etagListMatches(inm, meta.etag)
    ims = requestHeaders.getRawHeaders(b"If-Modified-Since")
    if ims is None:
        return False
    try:
        return meta.mtime <= stringToDatetime(ims[-1])
    except (ValueError, IndexError, KeyError, OverflowError):
        return False


def ifRangeAllows(requestHeaders: Headers, meta: FileMeta) -> bool:
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
