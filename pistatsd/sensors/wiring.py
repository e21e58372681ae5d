"""Builds the sensors feature from the configuration: the one place its parts meet.

The service (definitions, readings), its REST resource at C{/api/sensors},
the section every snapshot carries and the readings InfluxDB and
C{/metrics} report: L{sensors_parts} returns them together.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from attrs import frozen
from twisted.logger import Logger

from pistatsd.config import Config, ConfigError
from pistatsd.metrics import SensorMetrics
from pistatsd.reactors import IPistatsdReactor
from pistatsd.sensors.commands import CommandRunner
from pistatsd.sensors.confine import Confinement
from pistatsd.sensors.model import CommandSensor, parse_command_sensors
from pistatsd.sensors.resource import MutationGuard, SensorsResource
from pistatsd.sensors.service import MAX_SENSORS, REFRESH_INTERVAL, SensorsService
from pistatsd.sensors.store import SensorStore
from pistatsd.sensors.threads import ThreadedRunner
from pistatsd.web.routes import Route

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


@frozen
class SensorsParts:
    """The sensors feature, ready to compose.

    @ivar service: refreshes the readings; start it before the sampler, so
        the first snapshot already has them.
    @ivar routes: C{/api/sensors}.
    @ivar section: the snapshot section (C{{"sensors": ...}}), for the sampler.
    @ivar readings: name to value, for InfluxDB.
    @ivar metrics: the readings as Prometheus gauges.
    """

    service: SensorsService
    routes: tuple[Route, ...]
    section: Callable[[], Mapping[str, Any]]
    readings: Callable[[], Mapping[str, float | None]]
    metrics: SensorMetrics


def sensors_parts(config: Config, reactor: IPistatsdReactor) -> SensorsParts:
    """The sensors service, its resource and its readings, from the configuration."""
    service = sensors_service(config, reactor)
    resource = SensorsResource(service, MutationGuard(config.api_token))
    return SensorsParts(
        service=service,
        routes=(Route("/api/sensors", resource, link="sensors", below="/api/sensors/{name}"),),
        section=service.snapshot_section,
        readings=service.readings,
        metrics=SensorMetrics(service.readings),
    )


def sensors_service(config: Config, reactor: IPistatsdReactor) -> SensorsService:
    """The sensors service (C{.snapshot_section}, C{.readings}).

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
        interval=max(config.sample_interval, REFRESH_INTERVAL),
    )
