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
from pistatsd.config import OPTIONS, Config, ConfigError, build_config

_log = Logger()


def _check_endpoints(config: Config) -> None:
    """Parse every endpoint string now, so a typo stops start-up with its option named."""
    from twisted.internet import reactor

    for description in config.port:
        try:
            serverFromString(reactor, description)
        except Exception as e:
            raise ConfigError(f"--port {description}: {e}") from None


def _check_paths(config: Config) -> None:
    if not os.path.isdir(config.www):
        raise ConfigError(f"--www {config.www}: not a directory")
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
        if not spec.repeatable
    ]

    def __init__(self) -> None:
        super().__init__()
        self.repeated: dict[str, list[str]] = {}
        self.config: Config | None = None

    def opt_port(self, endpoint: str) -> None:
        """Plain HTTP + WebSocket endpoint (tcp:8888, unix:/run/p.sock, systemd:...);
        repeatable [default: tcp:8888]."""
        self.repeated.setdefault("port", []).append(endpoint)

    def given(self) -> dict[str, Any]:
        """The options the user actually gave on the command line."""
        values: dict[str, Any] = {
            name: value
            for name, value in self.items()
            if value is not None and name not in self.repeated
        }
        values.update(self.repeated)
        return values

    def postOptions(self) -> None:
        try:
            self.config = build_config(self.given(), (_check_paths, _check_endpoints))
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options | Config, reactor: Any = None) -> MultiService:
    """Build the whole daemon as one C{MultiService}; the reactor is injected for tests."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    config = options if isinstance(options, Config) else options.config
    if config is None:
        raise ValueError("options were not parsed")
    return _compose(config, reactor)


def _compose(config: Config, reactor: IReactorTime) -> MultiService:
    from pistatsd.heartbeat import heartbeat_service
    from pistatsd.listening import ListeningService
    from pistatsd.sampler import Sampler
    from pistatsd.signals import stop_cleanly_on_sigterm
    from pistatsd.status import DaemonStatus
    from pistatsd.web.root import build_tree
    from pistatsd.web.site import PistatsdSite

    top = MultiService()
    status = DaemonStatus(clock=reactor)
    sampler = Sampler(
        clock=reactor,
        interval=config.sample_interval,
        history_seconds=config.history_seconds,
        max_pending=config.max_pending_intervals,
    )
    sampler.setName("sampler")
    sampler.setServiceParent(top)

    root = build_tree(
        sampler=sampler,
        status=status,
        clock=reactor,
        www=config.www,
        history_seconds=config.history_seconds,
    )
    site = PistatsdSite(
        root,
        reactor=reactor,
        max_body=config.max_body,
        max_connections=config.max_connections,
        idle_timeout=config.idle_timeout,
        access_log=config.access_log,
    )
    status.http_connections = lambda: site.open_connections
    status.requests_total = lambda: site.requests_total

    listeners = MultiService()
    listeners.setName("listeners")
    for description in config.port:
        ListeningService("port", description, site, reactor).setServiceParent(listeners)
    listeners.setServiceParent(top)
    _Ready(status, config).setServiceParent(top)
    stop_cleanly_on_sigterm(reactor)

    if config.heartbeat > 0:
        heartbeat_service(status, config.heartbeat, reactor).setServiceParent(top)
    return top


class _Ready(Service):
    """Started after the listeners: marks the start time and says the daemon is ready."""

    def __init__(self, status: Any, config: Config) -> None:
        self._status = status
        self._config = config

    def startService(self) -> None:
        super().startService()
        self._status.mark_started()
        _log.info(
            "pistatsd {version} ready: listening on {ports}, serving {www}",
            version=__version__,
            ports=", ".join(self._config.port),
            www=self._config.www,
        )
