"""Loading the configuration with every start-up check: one path for the plugin and the .tac.

L{load} is what both C{Options.postOptions} and C{etc/pistatsd.tac} call, so
a bad endpoint, TLS file or sensor table stops start-up the same way
whichever way the daemon is run.
"""

from __future__ import annotations

import os
import os.path
from collections.abc import Callable, Mapping

from pistatsd.config import Config, ConfigError, build_config
from pistatsd.footprint import leave_out


def check_endpoints(config: Config) -> None:
    """Parse every endpoint string now, so a typo stops start-up with its option named.

    On a stand-in reactor: no reactor is installed yet (L{stored_only}).
    """
    from pistatsd.listening import server_endpoint
    from pistatsd.reactors import stored_only

    reactor = stored_only()
    for description in config.port:
        try:
            server_endpoint(reactor, description)
        except Exception as e:
            raise ConfigError(f"--port {description}: {e}") from None


def check_tls(config: Config) -> None:
    """Certificates and keys are checked at start-up, not at the first handshake."""
    if config.tls or config.cert or config.key:
        from pistatsd.tls import check_tls as check

        check(config)


def check_sensors(config: Config) -> None:
    """Command sensors and sensor roots are checked before anything starts."""
    from pistatsd.sensors.wiring import check_sensors as check

    check(config)


def check_alerts(config: Config) -> None:
    """The C{[alerts.NAME]} rule tables are checked before anything starts."""
    from pistatsd.alerts.wiring import check_alerts as check

    check(config)


def check_paths(config: Config) -> None:
    """The static root, the CA bundle and the access log's directory exist."""
    if not os.path.isdir(config.www):
        raise ConfigError(f"--www {config.www}: not a directory")
    if config.influx_cafile is not None and not os.path.isfile(config.influx_cafile):
        raise ConfigError(f"--influx-cafile {config.influx_cafile}: no such file")
    if config.access_log is not None:
        parent = os.path.dirname(os.path.abspath(config.access_log))
        if not os.path.isdir(parent):
            raise ConfigError(f"--access-log {config.access_log}: no directory {parent}")


def check_mqtt(config: Config) -> None:
    """The MQTT options fit together (a CA file only for mqtts://, a password with a user)."""
    if config.mqtt is not None:
        from pistatsd.mqtt.settings import check_mqtt as check

        check(config)


def leave_unused_out(config: Config) -> None:
    """Before any check: the endpoint checks import Twisted's TCP support, which
    imports pyOpenSSL if it can (L{pistatsd.footprint.leave_out})."""
    leave_out(config)


#: Every step on the settings once read, in the order they run: what to
#: leave unloaded first, then the checks, cheap ones first.
CHECKS: tuple[Callable[[Config], None], ...] = (
    leave_unused_out,
    check_paths,
    check_mqtt,
    check_endpoints,
    check_tls,
    check_sensors,
    check_alerts,
)


def load(given: Mapping[str, object], environ: Mapping[str, str] = os.environ) -> Config:
    """The validated configuration for the options C{given}, every start-up check passed.

    @param given: option name (with hyphens) to raw value, only for the
        options actually given (C{{"config": path}} for a TOML file alone).
    @raise pistatsd.errors.StartupError: one line naming the option.
    """
    return build_config(given, CHECKS, environ)
