"""The composition root: each part built by its feature's C{wiring} module, then composed.

It reads top to bottom: each part is built by its wiring, the status is
built from the parts, and the services are composed in their start order.
Nothing built is changed afterwards: every object gets its collaborators in
its constructor.  L{pistatsd.tap} imports this module only in
C{makeService}, after the options are read: what it imports (Twisted's
TCP, web and WebSocket support) is what the configuration decides on
(L{pistatsd.footprint}).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.application.service import IService, MultiService, Service
from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger

from pistatsd import __version__
from pistatsd.alerts.wiring import alerts_parts
from pistatsd.config import Config
from pistatsd.heap import freeze_startup_heap
from pistatsd.heartbeat import heartbeat_service
from pistatsd.history.wiring import history_parts
from pistatsd.influx.wiring import influx_parts
from pistatsd.latest import LatestSnapshot
from pistatsd.leftout import startup_over
from pistatsd.machine.background import threaded_parts
from pistatsd.machine.wiring import machine_parts
from pistatsd.metrics import ConnectionMetrics, RequestCounter, ScrapeRegistry, SystemMetrics
from pistatsd.mqtt.wiring import mqtt_parts
from pistatsd.notify.wiring import notify_parts
from pistatsd.reactors import IPistatsdReactor
from pistatsd.sampler import Sampler
from pistatsd.sensors.wiring import sensors_parts
from pistatsd.signals import stop_cleanly_on_sigterm
from pistatsd.status import DaemonStatus
from pistatsd.systemd import systemd_service
from pistatsd.web.connections import ConnectionCounter
from pistatsd.web.traffic import RequestTally, Traffic
from pistatsd.web.wiring import core_routes, route_table, web_parts
from pistatsd.ws.origins import OriginPolicy
from pistatsd.ws.wiring import websocket_parts

_log = Logger()


def compose(config: Config, reactor: IPistatsdReactor) -> MultiService:
    """Build each part from its wiring, the status from the parts, then start them in order.

    The order of C{setServiceParent} is the start order: sensors before the
    sampler (the first snapshot has them), listeners after everything they
    serve, readiness last.
    """
    connections = ConnectionCounter(config.max_connections)
    traffic, tally, requests = Traffic(), RequestTally(), RequestCounter()
    # One origin policy for WebSockets and for changes (POST, PUT, DELETE).
    origins = OriginPolicy.from_config(config.allowed_origin)

    sensors = sensors_parts(config, reactor)
    # Filesystems and processes: measured in worker threads, off the reactor.
    threaded = threaded_parts(config, reactor)
    history = history_parts(config, reactor)
    # The reporter reads the newest snapshot and hears of alert changes; the
    # alert engine is a sampler observer: both are built before the sampler.
    latest = LatestSnapshot()
    influx = influx_parts(config, reactor, tally=tally, sampler=latest, sensors=sensors.service)
    notify = notify_parts(config, reactor)
    alerts = alerts_parts(
        config,
        reactor,
        notify=notify,
        history=history.reader,
        listeners=() if influx.alert_listener is None else (influx.alert_listener,),
        figures=influx.figures,
    )
    sampler = Sampler(
        clock=reactor,
        interval=config.sample_interval,
        history_seconds=config.history_seconds,
        max_pending=config.max_pending_intervals,
        sections=(sensors.section, *threaded.sections),
        parts=machine_parts(config, reactor),
        observers=(latest.observe, *history.observers, *alerts.observers),
    )
    websockets = websocket_parts(
        config, reactor, sampler=sampler, origins=origins, connections=connections
    )
    mqtt = mqtt_parts(config, reactor, sampler=sampler, alerts=alerts.current)
    status = DaemonStatus(
        clock=reactor,
        connections=connections,
        traffic=traffic,
        websockets=websockets.health,
        influx=influx.health,
        history=history.health,
        mqtt=mqtt.health,
        alerts=alerts.health,
        notify=notify.health,
    )
    registry = ScrapeRegistry(
        requests,
        (
            ConnectionMetrics(connections, traffic),
            SystemMetrics(sampler),
            websockets.metrics,
            influx.metrics,
            mqtt.metrics,
            sensors.metrics,
            *history.metrics,
            *alerts.metrics,
            *notify.metrics,
        ),
    )
    routes = route_table(
        (
            *core_routes(
                sampler=sampler,
                status=status,
                history_seconds=config.history_seconds,
                registry=registry,
                history=history.reader,
            ),
            *sensors.routes,
            *alerts.routes,
            *websockets.routes,
        )
    )
    web = web_parts(
        config,
        reactor,
        routes=routes,
        connections=connections,
        traffic=traffic,
        tally=tally,
        requests=requests,
        origins=origins,
    )

    ports = ", ".join(config.port + config.tls)
    services: list[IService] = [
        sensors.service,
        threaded,
        *history.services,  # before the sampler: stopped after it, so nothing is lost
        *alerts.services,  # after the history: its change log is in its database
        *notify.services,
        sampler,
        *influx.services,
        *mqtt.services,
        websockets.hub,
        web.listeners,
        _Ready(status, config, reactor),
    ]
    notifier = systemd_service(reactor, status=f"pistatsd {__version__} serving {ports}")
    if notifier is not None:
        services.append(notifier)
    if config.heartbeat > 0:
        services.append(heartbeat_service(status, config.heartbeat, reactor))
    top = MultiService()
    for service in services:
        service.setServiceParent(top)
    stop_cleanly_on_sigterm(reactor)
    return top


class _Ready(Service):
    """Started after the listeners: marks the start time and, once the reactor
    runs (signal handlers installed, sockets served), freezes the start-up's
    objects out of the garbage collector's passes (L{pistatsd.heap}), lets
    later imports load what start-up left out (L{pistatsd.leftout.startup_over})
    and says the daemon is ready."""

    def __init__(
        self,
        status: DaemonStatus,
        config: Config,
        reactor: IReactorCore,
        freeze: Callable[[], object] = freeze_startup_heap,
        started: Callable[[], object] = startup_over,
    ) -> None:
        self._status = status
        self._config = config
        self._reactor = reactor
        self._freeze = freeze
        self._started = started

    def startService(self) -> None:
        super().startService()
        self._status.mark_started()
        self._reactor.callWhenRunning(self._announce)

    def _announce(self) -> None:
        self._freeze()
        self._started()
        _log.info(
            "pistatsd {version} ready: listening on {ports}, serving {www}",
            version=__version__,
            ports=", ".join(self._config.port + self._config.tls),
            www=self._config.www,
        )
