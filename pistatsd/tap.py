"""The composition root: twistd options and C{makeService}, used by the plugin and the .tac file.

It reads top to bottom: the options are parsed and checked (L{pistatsd.startup}),
each part is built by its feature's C{wiring} module, the status is built
from the parts, and the services are composed in their start order.
Nothing built is changed afterwards: every object gets its collaborators in
its constructor.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService, MultiService, Service
from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger
from twisted.python import usage

from pistatsd import __version__
from pistatsd.alerts.wiring import alerts_parts
from pistatsd.clock import use_monotonic_clock
from pistatsd.config import OPTIONS, Config
from pistatsd.errors import StartupError
from pistatsd.heartbeat import heartbeat_service
from pistatsd.history.wiring import history_parts
from pistatsd.influx.wiring import influx_parts
from pistatsd.latest import LatestSnapshot
from pistatsd.machine.background import threaded_parts
from pistatsd.machine.wiring import machine_parts
from pistatsd.metrics import ConnectionMetrics, RequestCounter, SystemMetrics, registry_of
from pistatsd.mqtt.wiring import mqtt_parts
from pistatsd.notify.wiring import notify_parts
from pistatsd.reactors import IPistatsdReactor, global_reactor
from pistatsd.sampler import Sampler
from pistatsd.sensors.wiring import sensors_parts
from pistatsd.signals import stop_cleanly_on_sigterm
from pistatsd.startup import load
from pistatsd.status import DaemonStatus
from pistatsd.systemd import systemd_service
from pistatsd.web.connections import ConnectionCounter
from pistatsd.web.traffic import RequestTally, Traffic
from pistatsd.web.wiring import core_routes, route_table, web_parts
from pistatsd.ws.origins import OriginPolicy
from pistatsd.ws.wiring import websocket_parts

_log = Logger()


class Options(usage.Options):
    """twistd pistatsd options; every one can also come from the C{--config} TOML file."""

    synopsis = "[options]"
    longdesc = (
        "Serve live system stats over REST, WebSocket and a dashboard, plus static files. "
        "Every option can also be set in a TOML file given with --config "
        "(keys are the long option names); the command line wins."
    )
    optParameters = [["config", "c", None, "TOML configuration file.", str]] + [
        [spec.name, None, None, f"{spec.help} [default: {spec.default}]"]
        for spec in OPTIONS
        if not spec.repeatable and not spec.flag
    ]
    optFlags = [[spec.name, None, spec.help] for spec in OPTIONS if spec.flag]

    def __init__(self) -> None:
        super().__init__()
        self.repeated: dict[str, list[str]] = {}
        self.config: Config | None = None

    def opt_port(self, endpoint: str) -> None:
        """Plain HTTP + WebSocket endpoint (tcp:8888, unix:/run/p.sock, systemd:...);
        repeatable [default: tcp:8888]."""
        self.repeated.setdefault("port", []).append(endpoint)

    def opt_tls(self, endpoint: str) -> None:
        """HTTPS + WSS endpoint (ssl:8443, ...); repeatable [default: none]."""
        self.repeated.setdefault("tls", []).append(endpoint)

    def opt_allowed_origin(self, origin: str) -> None:
        """Browser Origin accepted on WebSockets besides same-origin; repeatable."""
        self.repeated.setdefault("allowed-origin", []).append(origin)

    def opt_allowed_host(self, name: str) -> None:
        """Host name served besides this machine's own (.example.org: and subdomains;
        * any, unsafe); repeatable."""
        self.repeated.setdefault("allowed-host", []).append(name)

    def opt_sensor_root(self, directory: str) -> None:
        """Directory sensor files may live under; repeatable [default: /sys, /proc]."""
        self.repeated.setdefault("sensor-root", []).append(directory)

    def given(self) -> dict[str, object]:
        """The options the user actually gave on the command line."""
        flags = {spec.name for spec in OPTIONS if spec.flag}
        values: dict[str, Any] = {
            name: value
            for name, value in self.items()
            if value is not None and name not in self.repeated and not (name in flags and not value)
        }
        for name in flags & set(values):
            values[name] = True
        values.update(self.repeated)
        return values

    def postOptions(self) -> None:
        try:
            self.config = load(self.given())
        except StartupError as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options | Config, reactor: IPistatsdReactor | None = None) -> MultiService:
    """Build the whole daemon as one C{MultiService}; the reactor is injected for tests.

    A real reactor is first put on the monotonic clock (L{use_monotonic_clock}),
    before anything here schedules a timer; fakes are left as they are.
    """
    if reactor is None:
        reactor = global_reactor()
    config = options if isinstance(options, Config) else options.config
    if config is None:
        raise ValueError("options were not parsed")
    use_monotonic_clock(reactor)
    return _compose(config, reactor)


def _compose(config: Config, reactor: IPistatsdReactor) -> MultiService:
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
    registry = registry_of(
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
    runs (signal handlers installed, sockets served), says the daemon is ready."""

    def __init__(self, status: DaemonStatus, config: Config, reactor: IReactorCore) -> None:
        self._status = status
        self._config = config
        self._reactor = reactor

    def startService(self) -> None:
        super().startService()
        self._status.mark_started()
        self._reactor.callWhenRunning(self._announce)

    def _announce(self) -> None:
        _log.info(
            "pistatsd {version} ready: listening on {ports}, serving {www}",
            version=__version__,
            ports=", ".join(self._config.port + self._config.tls),
            www=self._config.www,
        )
