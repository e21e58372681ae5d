"""Builds the web side from the configuration: the route table, the tree, the site, the ports.

The daemon's own routes (L{core_routes}) and the features' routes make one
L{RouteTable}; the tree, C{/api} and the request counts all read it.  The
site is given the shared connection counter and request counts, and every
C{--port} and C{--tls} endpoint serves it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from attrs import frozen
from twisted.application.service import IService, MultiService
from twisted.internet.endpoints import serverFromString

from pistatsd.config import Config
from pistatsd.history.api import HistoryReader
from pistatsd.listening import ListeningService
from pistatsd.metrics import RequestCounter
from pistatsd.reactors import IPistatsdReactor
from pistatsd.sampler import Sampler
from pistatsd.status import DaemonStatus
from pistatsd.web.api import ApiIndex, HealthResource
from pistatsd.web.connections import ConnectionCounter
from pistatsd.web.hosts import host_policy
from pistatsd.web.metrics import MetricsResource
from pistatsd.web.pages import AliveResource
from pistatsd.web.root import build_tree
from pistatsd.web.routes import Route, RouteTable
from pistatsd.web.series import SeriesResource
from pistatsd.web.site import PistatsdSite
from pistatsd.web.stats import OPTIONAL_PARTS, PARTS, StatsResource
from pistatsd.web.sum import SumResource
from pistatsd.web.traffic import CountByRoute, RequestTally, Traffic
from pistatsd.ws.origins import OriginPolicy

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

#: Listen backlog for tcp:/ssl: endpoints that name none.  Twisted's default
#: of 50 overflows when a dashboard wall or a script opens hundreds of
#: connections at once; the dropped SYNs are retried only after a second.
DEFAULT_BACKLOG = 1024


def with_backlog(description: str) -> str:
    """C{description} with C{backlog=} added for tcp:/ssl: strings that have none."""
    kind = description.split(":", 1)[0].lower()
    if kind in ("tcp", "ssl", "tcp6") and "backlog=" not in description:
        return f"{description}:backlog={DEFAULT_BACKLOG}"
    return description


def core_routes(
    *,
    sampler: Sampler,
    status: DaemonStatus,
    history_seconds: float,
    registry: Callable[[], CollectorRegistry],
    history: HistoryReader | None = None,
    wall: Callable[[], float] = time.time,
) -> tuple[Route, ...]:
    """The daemon's own routes: C{/}, C{/alive}, C{/stats} and its parts, C{/sum},
    C{/health}, C{/metrics}; C{/stats/series} reads C{history} (None: the ring alone)."""
    stats = StatsResource(sampler, history_seconds)
    parts = tuple(
        Route(f"/stats/{part}", link=None if part in OPTIONAL_PARTS else f"stats_{part}")
        for part in PARTS
    )
    return (
        Route("/"),
        Route("/alive", AliveResource(), link="alive"),
        Route("/stats", stats, link="stats", below="/stats/{unknown}"),
        Route("/stats/history", link="history"),
        Route("/stats/series", SeriesResource(sampler, history, wall, status.clock), link="series"),
        Route("/sum", SumResource(), link="sum"),
        Route("/health", HealthResource(status), link="health"),
        *parts,
        Route("/metrics", MetricsResource(registry), link="metrics"),
    )


def route_table(routes: Iterable[Route]) -> RouteTable:
    """The table of C{routes} with C{/api}, whose index lists them all."""
    routes = tuple(routes)
    links = {"self": "/api", **RouteTable(routes).links()}
    return RouteTable((Route("/api", ApiIndex(links), below="/api/{unknown}"), *routes))


@frozen
class WebParts:
    """The web side, ready to compose.

    @ivar site: what every listening port serves.
    @ivar routes: every path it answers.
    @ivar listeners: one service per C{--port} and C{--tls} endpoint; a
        port that cannot be bound stops start-up.
    """

    site: PistatsdSite
    routes: RouteTable
    listeners: IService


def web_parts(
    config: Config,
    reactor: IPistatsdReactor,
    *,
    routes: RouteTable,
    connections: ConnectionCounter,
    traffic: Traffic,
    tally: RequestTally,
    requests: RequestCounter,
    origins: OriginPolicy,
) -> WebParts:
    """The site over the tree of C{routes}, and its listening ports."""
    site = PistatsdSite(
        build_tree(routes, config.www),
        reactor=reactor,
        connections=connections,
        traffic=traffic,
        observers=(CountByRoute(routes, tally, requests),),
        max_body=config.max_body,
        idle_timeout=config.idle_timeout,
        access_log=config.access_log,
        hosts=host_policy(config.allowed_host, config.allowed_origin, reactor),
        origins=origins,
    )
    return WebParts(site=site, routes=routes, listeners=listeners(config, reactor, site))


def listeners(config: Config, reactor: IPistatsdReactor, site: PistatsdSite) -> IService:
    """One listening service per C{--port} and C{--tls} endpoint, under one parent."""
    parent = MultiService()
    parent.setName("listeners")
    for description in config.port:
        endpoint = serverFromString(reactor, with_backlog(description))
        ListeningService("port", description, site, endpoint).setServiceParent(parent)
    if config.tls:
        from pistatsd.tls import tls_endpoint

        for description in config.tls:
            endpoint = tls_endpoint(reactor, with_backlog(description), config)
            ListeningService("tls", description, site, endpoint).setServiceParent(parent)
    return parent
