"""Builds the sensors service from the configuration: the one place its parts meet."""

from __future__ import annotations

import os
from typing import Any

from twisted.logger import Logger

from pistatsd.config import Config, ConfigError
from pistatsd.sensors.commands import CommandRunner
from pistatsd.sensors.confine import Confinement
from pistatsd.sensors.model import CommandSensor, parse_command_sensors
from pistatsd.sensors.service import MAX_SENSORS, REFRESH_INTERVAL, SensorsService
from pistatsd.sensors.store import SensorStore
from pistatsd.sensors.threads import ThreadedRunner

_log = Logger()


def command_sensors(config: Config) -> tuple[CommandSensor, ...]:
    """The TOML file's command sensors, validated.

    @raise pistatsd.config.ConfigError: naming the sensor and the problem.
    """
    return parse_command_sensors(config.extra.get("sensors"), MAX_SENSORS)


def check_sensors(config: Config) -> None:
    """A C{build_config} validator: whatever would stop L{sensors_service} stops
    start-up here instead, as one usage line naming the option or table.

    Bad C{[sensors.NAME]} tables, and sensor roots that are relative (twistd
    changes directory when it daemonises, so they would mean another place)
    or cannot be resolved.
    """
    command_sensors(config)
    for root in config.sensor_root:
        if not os.path.isabs(root):
            raise ConfigError(f"--sensor-root {root!r}: must be an absolute path")
        try:
            Confinement.of([root])
        except OSError as e:
            raise ConfigError(
                f"--sensor-root {root!r}: cannot be resolved: {e.strerror or e}"
            ) from None


def sensors_service(config: Config, reactor: Any) -> SensorsService:
    """The sensors service (C{.resource}, C{.snapshot_section}, C{.readings}).

    Readings refresh every sample interval, but no more often than every
    L{REFRESH_INTERVAL} seconds: sensors change slowly and commands cost a
    process each.

    @raise pistatsd.config.ConfigError: for a bad command sensor in the TOML file.
    """
    commands = command_sensors(config)
    for root in config.sensor_root:
        if not os.path.isdir(root):
            _log.warn("Sensor root {root} is not a directory", root=root)
    return SensorsService(
        clock=reactor,
        confinement=Confinement.of(config.sensor_root),
        store=SensorStore(config.state_dir),
        commands=commands,
        command_runner=CommandRunner(reactor),
        blocking=ThreadedRunner(reactor),
        api_token=config.api_token,
        interval=max(config.sample_interval, REFRESH_INTERVAL),
    )
