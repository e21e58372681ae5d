"""The composition root: twistd options and C{makeService}, used by the plugin and the .tac file."""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python import usage

from pistatsd import __version__
from pistatsd.clock import use_monotonic_clock
from pistatsd.config import OPTIONS, Config, ConfigError, build_config
from pistatsd.ws.origins import OriginPolicy

_log = Logger()


def _check_endpoints(config: Config) -> None:
    """Parse every endpoint string now, so a typo stops start-up with its option named."""
    from twisted.internet import reactor

    for description in config.port:
        try:
            serverFromString(reactor, description)
        except Exception as e:
            raise ConfigError(f"--port {description}: {e}") from None


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


def _check_tls(config: Config) -> None:
    """Certificates and keys are checked at start-up, not at the first handshake."""
    if config.tls or config.cert or config.key:
        from pistatsd.tls import check_tls

        check_tls(config)


def _check_sensors(config: Config) -> None:
    """Command sensors from the TOML file are checked before anything starts."""
    from pistatsd.sensors.wiring import check_sensors

    check_sensors(config)


def _check_paths(config: Config) -> None:
    if not os.path.isdir(config.www):
        raise ConfigError(f"--www {config.www}: not a directory")
    if config.influx_cafile is not None and not os.path.isfile(config.influx_cafile):
        raise ConfigError(f"--influx-cafile {config.influx_cafile}: no such file")
    if config.access_log is not None:
        parent = os.path.dirname(os.path.abspath(config.access_log))
        if not os.path.isdir(parent):
            raise ConfigError(f"--access-log {config.access_log}: no directory {parent}")


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

    def given(self) -> dict[str, Any]:
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
            self.config = build_config(
                self.given(), (_check_paths, _check_endpoints, _check_tls, _check_sensors)
            )
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options | Config, reactor: Any = None) -> MultiService:
    """Build the whole daemon as one C{MultiService}; the reactor is injected for tests.

    A real reactor is first put on the monotonic clock (L{use_monotonic_clock}),
    before anything here schedules a timer; fakes are left as they are.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    config = options if isinstance(options, Config) else options.config
    if config is None:
        raise ValueError("options were not parsed")
    use_monotonic_clock(reactor)
    return _compose(config, reactor)


def _compose(config: Config, reactor: IReactorTime) -> MultiService:
    from pistatsd.heartbeat import heartbeat_service
    from pistatsd.history.metrics import HistoryCollector
    from pistatsd.listening import ListeningService
    from pistatsd.metrics import DaemonCollector, Metrics
    from pistatsd.sampler import Sampler
    from pistatsd.sensors.wiring import sensors_service
    from pistatsd.signals import stop_cleanly_on_sigterm
    from pistatsd.status import DaemonStatus
    from pistatsd.systemd import systemd_service
    from pistatsd.web.hosts import host_policy
    from pistatsd.web.metrics import MetricsResource
    from pistatsd.web.root import build_tree
    from pistatsd.web.site import PistatsdSite
    from pistatsd.web.traffic import RequestTally, method_label, route_of, status_class

    top = MultiService()
    status = DaemonStatus(clock=reactor)
    sampler = Sampler(
        clock=reactor,
        interval=config.sample_interval,
        history_seconds=config.history_seconds,
        max_pending=config.max_pending_intervals,
    )
    sampler.setName("sampler")

    # Sensors start before the sampler, so the first snapshot already has them.
    sensors = sensors_service(config, reactor)
    if sensors is not None:
        sensors.setServiceParent(top)
        sampler.sections.append(sensors.snapshot_section)
    sampler.setServiceParent(top)

    root = build_tree(
        sampler=sampler,
        status=status,
        www=config.www,
        history_seconds=config.history_seconds,
    )
    if sensors is not None:
        root.api.putChild(b"sensors", sensors.resource)
    # One origin policy for WebSockets and for changes (POST, PUT, DELETE).
    origins = OriginPolicy.from_config(config.allowed_origin)
    site = PistatsdSite(
        root,
        reactor=reactor,
        max_body=config.max_body,
        max_connections=config.max_connections,
        idle_timeout=config.idle_timeout,
        access_log=config.access_log,
        hosts=host_policy(config.allowed_host, config.allowed_origin, reactor),
        origins=origins,
    )
    status.http_connections = lambda: site.open_connections
    status.requests_total = lambda: site.requests_total

    tally = RequestTally()
    metrics = Metrics()

    def count(request: Any) -> None:
        """Every answered request, for InfluxDB and Prometheus: labels computed once."""
        method, route = method_label(request.method), route_of(request.path)
        tally.observe(method, route, status_class(request.code))
        metrics.count_request(method, route, request.code)

    site.request_observers.append(count)
    root.putChild(b"metrics", MetricsResource(metrics.registry))
    root.api.add_link("metrics", "/metrics")

    if config.influx:
        from pistatsd.influx.wiring import influx_service

        reporter = influx_service(config, reactor, tally=tally, sampler=sampler, sensors=sensors)
        reporter.setServiceParent(top)
        status.influx = reporter.state

    from pistatsd.history.wiring import history_service

    history = history_service(config, reactor, lambda: sampler.latest)
    if history is not None:
        history_parent, history_store = history
        history_parent.setServiceParent(top)
        status.history = history_store.state
        metrics.registry.register(HistoryCollector(history_store.state))

    hub = _websockets(config, reactor, sampler, root, origins)
    hub.setServiceParent(top)
    site.extra_connections = lambda: hub.count
    status.websocket_clients = lambda: hub.count
    status.websocket_detail = hub.detail
    metrics.add(
        DaemonCollector(
            site=site,
            sampler=sampler,
            hub=hub,
            reporter_state=status.influx,
            sensor_readings=sensors.readings if sensors is not None else None,
        )
    )

    listeners = MultiService()
    listeners.setName("listeners")
    for description in config.port:
        endpoint = serverFromString(reactor, with_backlog(description))
        ListeningService("port", description, site, endpoint).setServiceParent(listeners)
    if config.tls:
        from pistatsd.tls import tls_endpoint

        for description in config.tls:
            endpoint = tls_endpoint(reactor, with_backlog(description), config)
            ListeningService("tls", description, site, endpoint).setServiceParent(listeners)
    listeners.setServiceParent(top)
    _Ready(status, config, reactor).setServiceParent(top)
    notifier = systemd_service(
        reactor, status=f"pistatsd {__version__} serving " + ", ".join(config.port + config.tls)
    )
    if notifier is not None:
        notifier.setServiceParent(top)
    stop_cleanly_on_sigterm(reactor)

    if config.heartbeat > 0:
        heartbeat_service(status, config.heartbeat, reactor).setServiceParent(top)
    return top


def _websockets(
    config: Config, reactor: Any, sampler: Any, root: Any, origins: OriginPolicy
) -> Service:
    """The WebSocket hub (a service) and its resources, mounted at C{/ws}."""
    from pistatsd.ws.broadcast import Broadcaster
    from pistatsd.ws.hub import WebSocketHub
    from pistatsd.ws.resource import websocket_tree

    hub = WebSocketHub(Broadcaster(sampler, reactor, config.broadcast_interval), reactor)
    hub.setName("websockets")
    root.putChild(b"ws", websocket_tree(hub, origins))
    root.api.add_link("ws_echo", "/ws/echo")
    root.api.add_link("ws_broadcast", "/ws/broadcast")
    return hub


class _Ready(Service):
    """Started after the listeners: marks the start time and, once the reactor
    runs (signal handlers installed, sockets served), says the daemon is ready."""

    def __init__(self, status: Any, config: Config, reactor: Any) -> None:
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
