"""The root of the resource tree: named routes, then C{*.zzz} pages, then static files."""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from pistatsd.web.negotiation import lists_html
from pistatsd.web.pages import AliveResource, ZzzPage
from pistatsd.web.routes import RouteTable, mount
from pistatsd.web.static import StaticFiles


class RootResource(Resource):
    """C{/}: named children first, then C{*.zzz} pages, then static files.

    C{/} itself is negotiated: browsers (which list C{text/html}) get the
    dashboard, everything else (curl, C{*/*}, probes) gets C{Alive}.
    """

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


def build_tree(routes: RouteTable, www: str, wall: Callable[[], float] = time.time) -> RootResource:
    """The whole tree, mounted once from the route table, with static files from C{www}.

    @param wall: the wall clock, for the dates pages show.
    """
    root = RootResource(StaticFiles(www), wall)
    mount(root, routes.routes)
    return root
