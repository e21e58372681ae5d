"""Builds the WebSocket side: the hub (a service), its broadcast, /ws/echo and /ws/broadcast."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from attrs import frozen
from twisted.internet.interfaces import IReactorTime

from pistatsd.config import Config
from pistatsd.metrics import WebSocketMetrics
from pistatsd.sampler import Sampler
from pistatsd.web.connections import ConnectionCounter
from pistatsd.web.routes import Route
from pistatsd.ws.broadcast import Broadcaster
from pistatsd.ws.hub import WebSocketHub
from pistatsd.ws.origins import OriginPolicy
from pistatsd.ws.protocols import BroadcastProtocol, EchoProtocol, PistatsdFactory
from pistatsd.ws.resource import UpgradeResource


def websocket_routes(
    hub: WebSocketHub, origins: OriginPolicy, **factory_options: float
) -> tuple[Route, ...]:
    """C{/ws/echo} and C{/ws/broadcast}, each behind the Origin check."""
    return tuple(
        Route(
            f"/ws/{name}",
            UpgradeResource(PistatsdFactory(protocol, hub, **factory_options), origins),
            link=f"ws_{name}",
        )
        for name, protocol in (("echo", EchoProtocol), ("broadcast", BroadcastProtocol))
    )


@frozen
class WebSocketParts:
    """The WebSocket side, ready to compose.

    @ivar hub: the service that owns every WebSocket (closes them at stop).
    @ivar routes: C{/ws/echo} and C{/ws/broadcast}.
    @ivar health: C{/health}'s C{"websockets"}.
    @ivar metrics: the clients and the broadcast's troubles, for C{/metrics}.
    """

    hub: WebSocketHub
    routes: tuple[Route, ...]
    health: Callable[[], Mapping[str, Any]]
    metrics: WebSocketMetrics


def websocket_parts(
    config: Config,
    reactor: IReactorTime,
    *,
    sampler: Sampler,
    origins: OriginPolicy,
    connections: ConnectionCounter,
) -> WebSocketParts:
    """The hub, counted against the connection cap with the site, and its routes."""
    hub = WebSocketHub(
        Broadcaster(sampler, reactor, config.broadcast_interval),
        reactor,
        connections=connections,
    )
    return WebSocketParts(
        hub=hub,
        routes=websocket_routes(hub, origins),
        health=hub.detail,
        metrics=WebSocketMetrics(hub.detail),
    )
