"""The hub: every open WebSocket, the broadcast, the counts, and a clean shutdown."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import uuid4

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pistatsd.web.connections import ConnectionCounter
from pistatsd.ws.broadcast import Broadcaster

if TYPE_CHECKING:
    from pistatsd.ws.protocols import HubProtocol

_log = Logger()

GOING_AWAY = 1001


class WebSocketHub(Service):
    """Owns the WebSocket side of the daemon.

    A service (not the Autobahn factory) because C{Site} never starts the
    factories it upgrades into; the hub's C{stopService} closes every client
    with 1001 ("going away") and waits, bounded, for them to go.
    """

    name = "websockets"

    def __init__(
        self,
        broadcaster: Broadcaster,
        clock: IReactorTime,
        *,
        connections: ConnectionCounter | None = None,
        close_timeout: float = 3.0,
    ) -> None:
        """
        @param connections: the counter the site shares (C{--max-connections}
            covers HTTP and WebSocket connections together); a counter of
            its own if not given.
        """
        self.broadcaster = broadcaster
        self.clock = clock
        self.connections = connections if connections is not None else ConnectionCounter(1024)
        self.close_timeout = close_timeout
        self.clients: set[HubProtocol] = set()
        self._waiting: dict[HubProtocol, Deferred[None]] = {}
        self.opened_total = 0

    @property
    def count(self) -> int:
        """Open WebSocket connections (counted against the connection cap)."""
        return len(self.clients)

    def detail(self) -> dict[str, int | float | bool]:
        """Counters for C{/health}: clients, and how the broadcast copes with slow ones."""
        return {
            "clients": len(self.clients),
            "broadcast_clients": len(self.broadcaster.clients),
            "broadcast_interval": self.broadcaster.interval,
            "broadcast_running": self.broadcaster.running,
            "opened_total": self.opened_total,
            "ticks": self.broadcaster.ticks,
            "skipped_sends": self.broadcaster.skipped,
            "dropped_clients": self.broadcaster.dropped,
            "client_messages_ignored": self.broadcaster.messages_ignored,
        }

    def opened(self, protocol: HubProtocol) -> None:
        """A handshake completed."""
        protocol.ws_id = uuid4().hex
        self.clients.add(protocol)
        self.connections.opened("websocket")
        self.opened_total += 1

    def closed(self, protocol: HubProtocol) -> None:
        """A connection ended (idempotent: Autobahn may report it twice)."""
        if protocol not in self.clients:
            return
        self.clients.discard(protocol)
        self.connections.closed("websocket")
        self.broadcaster.leave(protocol)
        waiting = self._waiting.pop(protocol, None)
        if waiting is not None:
            waiting.callback(None)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if not self.clients:
            return None
        _log.info("Closing {n} WebSocket connections", n=len(self.clients))
        waits = []
        for protocol in list(self.clients):
            d: Deferred[None] = Deferred()
            self._waiting[protocol] = d
            waits.append(d)
            protocol.close_with(GOING_AWAY, "server shutting down")
        done = DeferredList(waits)
        timer = self.clock.callLater(self.close_timeout, self._abort_stragglers)
        done.addBoth(lambda _: timer.cancel() if timer.active() else None)
        return done.addCallback(lambda _: None)

    def _abort_stragglers(self) -> None:
        for protocol in list(self.clients):
            protocol.dropConnection(abort=True)
            self.closed(protocol)
