"""Serve a folder of static files: hardened, cached and streamed.

L{StaticFiles} replaces L{twisted.web.static.File} for pistatsd's static root
because C{static.File} serves dotfiles, follows symlinks out of its root,
lists directories and does a lot of per-request work (L{FilePath} objects,
C{mimetypes} lookups, a cooperator-driven pull producer even for tiny files).

Design, in the order a request meets it (and the module that does it):

 - Only C{GET} and C{HEAD}; anything else is a 405 with C{Allow}
   (L{resource}).
 - The URL segments (already percent-decoded by Twisted) are validated
   without touching the disk: no segment may be empty (except a trailing one,
   which means "directory"), start with C{.}, or contain C{/}, C{\\} or NUL
   (L{paths}).
 - The path is walked one C{lstat} per segment below the (real) root.  Only
   when a symlink is met is C{os.path.realpath} used, and the result must stay
   inside the real root (and contain no dot component), else 404.  A request
   for C{/small.html} therefore costs exactly one system call on a cache hit
   (L{paths}).
 - Small files (C{<= cache_file_max}) live in an LRU cache keyed by real path
   together with their precomputed headers (L{meta}, L{contenttypes}); every
   hit is validated by the C{lstat} above (size, C{st_mtime_ns} and inode
   must match) (L{cache}).
 - Larger files are streamed with C{os.pread} from a push producer registered
   on the request: the transport pauses it when its buffer is full, so a slow
   client never makes us buffer the file, and the descriptor is closed when
   the response ends or the client goes away.  No threads (L{producer}).
 - Validators: C{ETag} (from inode, size and C{mtime_ns}), C{Last-Modified},
   C{If-None-Match} (before C{If-Modified-Since}, RFC 9110 13.2.2), single
   byte ranges with C{If-Range}; multiple or malformed ranges get the whole
   file, as RFC 9110 14.2 allows (L{conditional}).

Errors are short C{text/plain} bodies that never contain file data.
"""

from pistatsd.web.static.contenttypes import contentTypeFor
from pistatsd.web.static.resource import StaticFiles

__all__ = ["StaticFiles", "contentTypeFor"]
