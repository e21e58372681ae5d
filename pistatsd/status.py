"""What the daemon knows about itself, for C{/health} and the heartbeat line."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from attrs import define, field
from twisted.internet.interfaces import IReactorTime

from pistatsd import __version__
from pistatsd.jsontypes import JSONMapping, JSONObject
from pistatsd.web.connections import ConnectionCounter
from pistatsd.web.traffic import Traffic

#: C{/health}'s C{"influx"} when reporting is off (no C{--influx}).  The same
#: keys as L{pistatsd.influx.reporter.InfluxReporter.state}, with zero or null
#: values, so that whatever watches the daemon can rely on every key being
#: there whether reporting is on or not.  A test compares the two key sets.
INFLUX_OFF: Mapping[str, object] = {
    "enabled": False,
    "url": None,
    "api": None,
    "last_success": None,
    "last_error": None,
    "last_failure": None,
    "last_failure_time": None,
    "queued": 0,
    "spooled": 0,
    "dropped": 0,
    "retrying": False,
}

#: C{/health}'s C{"history"} with C{--history-db none}: the keys of
#: L{pistatsd.history.service.HistoryService.state} (compared by a test too).
HISTORY_OFF: Mapping[str, object] = {
    "enabled": False,
    "path": None,
    "open": False,
    "size_bytes": 0,
    "max_bytes": 0,
    "series": 0,
    "oldest": None,
    "pending_rows": 0,
    "dropped_rows": 0,
    "last_flush": None,
    "last_flush_seconds": None,
    "last_flush_cpu_seconds": None,
    "flush_failures": 0,
    "last_error": None,
    "queries_running": 0,
    "queries_refused": 0,
}

#: C{/health}'s C{"mqtt"} without C{--mqtt}: the keys of
#: L{pistatsd.mqtt.wiring.MQTTHealth} (compared by a test too).
MQTT_OFF: Mapping[str, object] = {
    "enabled": False,
    "broker": None,
    "tls": False,
    "state_topic": None,
    "discovery": False,
    "connected": False,
    "connected_since": None,
    "connections": 0,
    "reconnects": 0,
    "connect_failures": 0,
    "retrying": False,
    "last_error": None,
    "last_error_time": None,
    "publishes": 0,
    "publish_failures": 0,
    "states_replaced": 0,
    "last_publish": None,
    "pending_state": False,
    "entities": 0,
}

#: C{/health}'s C{"websockets"} of a status built without a hub: the keys of
#: L{pistatsd.ws.hub.WebSocketHub.detail}, zero or null (compared by a test too).
WEBSOCKETS_IDLE: Mapping[str, object] = {
    "clients": 0,
    "broadcast_clients": 0,
    "broadcast_interval": None,
    "broadcast_running": False,
    "opened_total": 0,
    "ticks": 0,
    "skipped_sends": 0,
    "dropped_clients": 0,
    "client_messages_ignored": 0,
}


#: C{/health}'s C{"alerts"} of a status built without alerts: the keys of
#: L{pistatsd.alerts.wiring.alerts_health} (compared by a test too).
ALERTS_NONE: Mapping[str, object] = {
    "rules": 0,
    "alerts": 0,
    "pending": 0,
    "firing": 0,
    "changes": 0,
    "refused": 0,
    "log_persistent": False,
    "log_size": 0,
    "log_write_failures": 0,
    "log_unsaved_dropped": 0,
}

#: C{/health}'s C{"notify"} of a status built without notifiers.
NOTIFY_NONE: Mapping[str, object] = {"notifiers": {}}


def alerts_none() -> JSONObject:
    """The alerts section of a status built without alerts."""
    return dict(ALERTS_NONE)


def notify_none() -> JSONObject:
    """The notifiers section of a status built without notifiers."""
    return dict(NOTIFY_NONE)


def influx_off() -> JSONObject:
    """The reporter state of a daemon that does not report to InfluxDB."""
    return dict(INFLUX_OFF)


def history_off() -> JSONObject:
    """The history state of a daemon without a history database."""
    return dict(HISTORY_OFF)


def mqtt_off() -> JSONObject:
    """The MQTT state of a daemon that publishes to no broker."""
    return dict(MQTT_OFF)


def websockets_idle() -> JSONObject:
    """The WebSocket counters of a daemon without a hub."""
    return dict(WEBSOCKETS_IDLE)


@define
class DaemonStatus:
    """What the daemon knows about itself, read from its parts on demand (never pushed).

    Built after the parts it reads, from them: the connection counter the
    site and the hub share, the site's request counts, and the health
    sources of the WebSocket hub, the InfluxDB reporter, the history and MQTT.  Parts that are
    off answer with their "off" shape (same keys, zero or null values), so
    the document's shape never depends on the options.  C{started} is a date
    (from C{wall}); the uptime is measured on C{clock} (monotonic in the
    daemon), so a stepped wall clock does not change it.
    """

    clock: IReactorTime
    connections: ConnectionCounter = field(factory=lambda: ConnectionCounter(1))
    traffic: Traffic = field(factory=Traffic)
    websockets: Callable[[], JSONMapping] = field(default=websockets_idle)
    influx: Callable[[], JSONMapping] = field(default=influx_off)
    history: Callable[[], JSONMapping] = field(default=history_off)
    mqtt: Callable[[], JSONMapping] = field(default=mqtt_off)
    alerts: Callable[[], JSONMapping] = field(default=alerts_none)
    notify: Callable[[], JSONMapping] = field(default=notify_none)
    wall: Callable[[], float] = time.time
    started: float = field(default=0.0, init=False)
    _started_at: float = field(default=0.0, init=False)

    def http_connections(self) -> int:
        """HTTP connections now open."""
        return self.connections.open("http")

    def websocket_clients(self) -> int:
        """WebSocket connections now open."""
        return self.connections.open("websocket")

    def requests_total(self) -> int:
        """Requests answered since start."""
        return self.traffic.total

    def mark_started(self) -> None:
        """Remember when the daemon started: the date, and the clock time for its uptime."""
        self.started = self.wall()
        self._started_at = self.clock.seconds()

    def uptime(self) -> float:
        """Seconds since the daemon started."""
        return max(0.0, self.clock.seconds() - self._started_at)

    def health(self) -> JSONObject:
        """The C{/health} document."""
        return {
            "status": "ok",
            "version": __version__,
            "uptime": round(self.uptime(), 3),
            "started": self.started,
            "http_connections": self.http_connections(),
            "requests_total": self.requests_total(),
            "websocket_clients": self.websocket_clients(),
            "websockets": dict(self.websockets()),
            "influx": dict(self.influx()),
            "history": dict(self.history()),
            "mqtt": dict(self.mqtt()),
            "alerts": dict(self.alerts()),
            "notify": dict(self.notify()),
        }
