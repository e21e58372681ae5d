"""What the daemon knows about itself, for C{/health} and the heartbeat line."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from attrs import define, field
from twisted.internet.interfaces import IReactorTime

from pistatsd import __version__


def _no_reporter() -> dict[str, Any]:
    return {"enabled": False}


@define
class DaemonStatus:
    """Counters gathered from the parts of the daemon, read on demand (never pushed).

    The composition root fills in the callables; each part stays ignorant of
    C{/health}.  C{started} is a date (from C{wall}); the uptime is measured on
    C{clock} (monotonic in the daemon), so a stepped wall clock does not change it.
    """

    clock: IReactorTime
    started: float = 0.0
    http_connections: Callable[[], int] = lambda: 0
    requests_total: Callable[[], int] = lambda: 0
    websocket_clients: Callable[[], int] = lambda: 0
    websocket_detail: Callable[[], dict[str, Any]] = field(factory=lambda: dict)
    influx: Callable[[], dict[str, Any]] = field(default=_no_reporter)
    wall: Callable[[], float] = time.time
    _started_at: float = field(default=0.0, init=False)

    def mark_started(self) -> None:
        """Remember when the daemon started: the date, and the clock time for its uptime."""
        self.started = self.wall()
        self._started_at = self.clock.seconds()

    def uptime(self) -> float:
        """Seconds since the daemon started."""
        return max(0.0, self.clock.seconds() - self._started_at)

    def health(self) -> dict[str, Any]:
        """The C{/health} document."""
        return {
            "status": "ok",
            "version": __version__,
            "uptime": round(self.uptime(), 3),
            "started": self.started,
            "http_connections": self.http_connections(),
            "requests_total": self.requests_total(),
            "websocket_clients": self.websocket_clients(),
            "websockets": self.websocket_detail(),
            "influx": self.influx(),
        }
