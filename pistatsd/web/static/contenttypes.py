"""File name to C{Content-Type}: our table for the web's own types, then the system's.

The web's types (a dashboard's HTML, scripts, styles, images, fonts) are
answered from L{_TYPE_OVERRIDES}.  Any other extension makes the full table
once (C{mimetypes}' with the system's C{mime.types} files merged, a few
thousand entries, about half a MiB): a daemon serving only its dashboard
never builds it, and no request calls into C{mimetypes} after that.
"""

from __future__ import annotations

import contextlib
import functools
import os

__all__ = ["DEFAULT_TYPE", "contentTypeFor"]

DEFAULT_TYPE = b"application/octet-stream"
"""For names without an extension, or with one nobody knows."""

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


def _charset(ctype: str) -> bytes:
    """C{ctype} as bytes, C{text/*} with C{charset=utf-8}."""
    if ctype.startswith("text/") and "charset" not in ctype:
        ctype += "; charset=utf-8"
    return ctype.encode("ascii", "replace")


#: The web's own types, as served.
_WEB_TYPES: dict[bytes, bytes] = {
    ext.encode("ascii"): _charset(ctype) for ext, ctype in _TYPE_OVERRIDES.items()
}


@functools.cache
def _buildTypeTable() -> dict[bytes, bytes]:
    """
    Build the extension -> C{Content-Type} table once, for the first unusual extension.

    Python's built-in table and the system's C{mime.types} files are merged
    (so unusual extensions still get a type), then L{_TYPE_OVERRIDES} wins.
    Every C{text/*} type gets C{charset=utf-8}.  Built once so that requests
    never call into C{mimetypes} again.
    """
    import mimetypes

    db = mimetypes.MimeTypes()
    for name in mimetypes.knownfiles:
        if os.path.isfile(name):
            # A broken system file must not fail the request that asked.
            with contextlib.suppress(OSError, UnicodeDecodeError):
                db.read(name)
    merged: dict[str, str] = {}
    merged.update(db.types_map[False])
    merged.update(db.types_map[True])
    merged.update(_TYPE_OVERRIDES)
    return {
        ext.lower().encode("ascii", "replace"): _charset(ctype) for ext, ctype in merged.items()
    }


def contentTypeFor(name: bytes) -> bytes:
    """
    The C{Content-Type} to serve a file called C{name} (a basename) with.

    Public so that other resources (the dashboard's C{/}) agree with us.
    """
    dot = name.rfind(b".")
    if dot <= 0:
        return DEFAULT_TYPE
    ext = name[dot:].lower()
    known = _WEB_TYPES.get(ext)
    if known is not None:
        return known
    return _buildTypeTable().get(ext, DEFAULT_TYPE)
