"""The route table: every path pistatsd serves, read by the tree, C{/api} and the request counts.

One row per route (L{Route}): its path, the resource that serves it (if it
is mounted there), its name in C{/api}'s links, and its label in the
request counts (C{/metrics}, InfluxDB), with the label of the paths below
it.  The resource tree is mounted from the table once (L{mount}), C{/api}
lists its links, and L{RouteTable.label} turns any request path into one of
a bounded set of labels by matching the same rows, so the three can never
disagree.
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import frozen
from twisted.web.resource import IResource, Resource

#: The label of a path no route names: a static file, or nothing at all.
OTHER = "/{static}"
#: The label of the C{*.zzz} pages, wherever they are asked for.
ZZZ = "/{path}.zzz"


@frozen
class Route:
    """One path the daemon answers.

    @ivar path: C{/stats}, C{/api/sensors}, C{/ws/echo}: its own label too.
    @ivar resource: what serves it, mounted at C{path}; None for a path
        answered by the resource of a shorter one (C{/stats/cpu}).
    @ivar link: its name in C{/api}'s links, or None to leave it out.
    @ivar below: the label of any longer path under it that no row names
        (C{/stats/{unknown}}); None to label those as unknown paths.
    """

    path: str
    resource: IResource | None = None
    link: str | None = None
    below: str | None = None


class RouteTable:
    """The rows, and the request-path labels derived from them.

    Labels are computed per request, so recent ones are remembered; the
    memory is bounded by key length and count (a client can send any
    number of distinct 16 KiB paths), not just by count.
    """

    #: Paths longer than this are labelled each time, never remembered.
    MAX_CACHED_PATH = 256
    #: Remembered labels at most; the memory is cleared when it is full.
    MAX_CACHED = 1024

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes: tuple[Route, ...] = tuple(routes)
        paths = [route.path for route in self.routes]
        duplicate = {p for p in paths if paths.count(p) > 1}
        if duplicate:
            raise ValueError(f"routes declared twice: {sorted(duplicate)}")
        self._exact = frozenset(paths)
        self._below = {r.path: r.below for r in self.routes if r.below is not None}
        self._cache: dict[bytes, str] = {}

    def links(self) -> dict[str, str]:
        """C{/api}'s links: name to path, in table order."""
        return {route.link: route.path for route in self.routes if route.link is not None}

    def label(self, path: bytes) -> str:
        """The label of a request path (without its query string): one of a bounded set."""
        label = self._cache.get(path)
        if label is not None:
            return label
        label = self._match(path.decode("latin-1"))
        if len(path) <= self.MAX_CACHED_PATH:
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            self._cache[path] = label
        return label

    @property
    def cached_bytes(self) -> int:
        """How many bytes of request paths the label memory holds."""
        return sum(len(path) for path in self._cache)

    def _match(self, text: str) -> str:
        if len(text) > 1 and text.endswith("/"):
            text = text[:-1]
        if text in self._exact:
            return text
        if text.endswith(".zzz"):
            return ZZZ
        prefix = text
        while (cut := prefix.rfind("/")) > 0:
            prefix = prefix[:cut]
            below = self._below.get(prefix)
            if below is not None:
                return below
        return OTHER


def mount(root: Resource, routes: Iterable[Route]) -> Resource:
    """Put every route's resource in the tree under C{root}, shorter paths first.

    Segments with no resource of their own (C{/ws} for C{/ws/echo}) get a
    plain L{Resource}, which answers 404 itself.
    """
    mounted = sorted((r for r in routes if r.resource is not None), key=lambda r: r.path.count("/"))
    for route in mounted:
        assert route.resource is not None
        *parents, last = route.path.strip("/").encode("ascii").split(b"/")
        node = root
        for segment in parents:
            child = node.children.get(segment)
            if child is None:
                child = Resource()
                node.putChild(segment, child)
            node = child
        node.putChild(last, route.resource)
    return root
