"""The resource tree: every path pistatsd answers, assembled in one place."""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from pistatsd.history.api import HistoryReader
from pistatsd.sampler import Sampler
from pistatsd.status import DaemonStatus
from pistatsd.web.api import ApiIndex, HealthResource
from pistatsd.web.negotiation import lists_html
from pistatsd.web.pages import AliveResource, ZzzPage
from pistatsd.web.series import SeriesResource
from pistatsd.web.static import StaticFiles
from pistatsd.web.stats import PARTS, StatsResource
from pistatsd.web.sum import SumResource


class RootResource(Resource):
    """C{/}: named children first, then C{*.zzz} pages, then static files.

    C{/} itself is negotiated: browsers (which list C{text/html}) get the
    dashboard, everything else (curl, C{*/*}, probes) gets C{Alive}.
    """

    api: ApiIndex

    def __init__(self, static: IResource, wall: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._static = static
        self._alive = AliveResource()
        self._zzz = ZzzPage(wall)

    def getChild(self, path: bytes, request: Request) -> IResource:
        last = request.postpath[-1] if request.postpath else path
        if last.endswith(b".zzz"):
            return self._zzz
        if path == b"" and not request.postpath:
            request.setHeader(b"vary", b"Accept")
            if lists_html(request.getHeader(b"accept")):
                return self._static
            return self._alive
        return self._static


def build_tree(
    *,
    sampler: Sampler,
    status: DaemonStatus,
    www: str,
    history_seconds: float,
    wall: Callable[[], float] = time.time,
    history: HistoryReader | None = None,
) -> RootResource:
    """Assemble the whole tree; returns the root and leaves room for more children.

    @param wall: the wall clock, for the dates pages show.
    @param history: the history store for C{/stats/series}; None: the ring alone.
    """
    root = RootResource(StaticFiles(www), wall)
    root.putChild(b"alive", AliveResource())
    stats = StatsResource(sampler, history_seconds)
    stats.putChild(b"series", SeriesResource(sampler, history, wall, status.clock))
    root.putChild(b"stats", stats)
    root.putChild(b"sum", SumResource())
    root.putChild(b"health", HealthResource(status))
    links = {
        "self": "/api",
        "alive": "/alive",
        "stats": "/stats",
        "history": "/stats/history",
        "series": "/stats/series",
        "sum": "/sum",
        "health": "/health",
    }
    links.update({f"stats_{part}": f"/stats/{part}" for part in PARTS if part != "throttled"})
    root.api = ApiIndex(links)
    root.putChild(b"api", root.api)
    return root
