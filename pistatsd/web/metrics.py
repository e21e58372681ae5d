"""C{/metrics}: the Prometheus text exposition."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from twisted.web.server import Request

from pistatsd.web.responses import JSONResource


class MetricsResource(JSONResource):
    """Renders the registry; everything it reads is in memory, so rendering never blocks."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return generate_latest(self._registry)
