"""C{/api} (an index of every resource) and C{/health}."""

from __future__ import annotations

from collections.abc import Mapping

from twisted.web.resource import Resource
from twisted.web.server import Request

from pistatsd import __version__
from pistatsd.status import DaemonStatus
from pistatsd.web.responses import JSONNotFound, JSONResource, json_body


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class ApiIndex(JSONResource):
    """C{GET /api}: name, version, links, and the query arguments received, echoed back.

    The echo lets people building front-ends see exactly what arrived.  The
    links are the route table's (L{pistatsd.web.routes}), children such as
    C{/api/sensors} are mounted from it too.
    """

    def __init__(self, links: Mapping[str, str]) -> None:
        super().__init__()
        self._links = dict(links)

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self
        return JSONNotFound()

    def render_GET(self, request: Request) -> bytes:
        args = {_text(k): [_text(v) for v in vs] for k, vs in request.args.items()}
        return json_body(
            request,
            {"name": "pistatsd", "version": __version__, "links": self._links, "args": args},
        )


class HealthResource(JSONResource):
    """C{GET /health}: is the daemon well, and how are its parts doing."""

    isLeaf = True

    def __init__(self, status: DaemonStatus) -> None:
        super().__init__()
        self._status = status

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"cache-control", b"no-store")
        return json_body(request, self._status.health())
