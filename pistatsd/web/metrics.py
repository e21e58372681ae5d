"""C{/metrics}: the Prometheus text exposition."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.web.server import Request

from pistatsd.web.responses import JSONResource

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry


class MetricsResource(JSONResource):
    """Renders the registry; everything it reads is in memory, so rendering never blocks."""

    isLeaf = True

    def __init__(self, registry: Callable[[], CollectorRegistry]) -> None:
        """@param registry: gives the registry (built at the first scrape, L{pistatsd.metrics})."""
        super().__init__()
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return generate_latest(self._registry())
