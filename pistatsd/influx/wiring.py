"""Builds the InfluxDB reporter from the configuration: the one place that reads L{Config}.

The reporter, its writer and treq are imported only when C{--influx} is
given: a daemon that does not report does not load them (about 1.4 MiB).
"""

from __future__ import annotations

import os
import random as _random
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from attrs import frozen
from twisted.internet.interfaces import IReactorTime

from pistatsd.alerts.events import ChangeListener
from pistatsd.config import Config
from pistatsd.errors import StartupError
from pistatsd.metrics import InfluxMetrics, LatestSnapshot
from pistatsd.status import influx_off

if TYPE_CHECKING:
    from pistatsd.influx.points import Sensors, Tally
    from pistatsd.influx.reporter import InfluxReporter
    from pistatsd.influx.writer import HTTPClient, InfluxTarget


def target_from_config(config: Config) -> InfluxTarget:
    """Where and how to write, from the options (v2 when a token is set)."""
    from pistatsd.influx.writer import InfluxTarget

    assert config.influx is not None
    return InfluxTarget.build(
        config.influx,
        database=config.influx_db,
        user=config.influx_user,
        password=config.influx_password,
        token=config.influx_token,
        org=config.influx_org,
        bucket=config.influx_bucket,
    )


def influx_service(
    config: Config,
    reactor: IReactorTime,
    *,
    tally: Tally,
    sampler: LatestSnapshot,
    sensors: Sensors | None,
    http: HTTPClient | None = None,
    random: Callable[[], float] = _random.random,
    state_dir: str | None = None,
    wall: Callable[[], float] = time.time,
) -> InfluxReporter:
    """The reporter service for C{--influx}; it has C{.state()} for C{/health}.

    @param http: an injected treq client (tests); by default the service owns
        an C{HTTPConnectionPool}.
    @param random: jitter source, injected for exact tests.
    @param state_dir: where the spool lives (default: C{config.state_dir}).
    @param wall: the wall clock that dates the points.
    """
    from pistatsd.influx.points import DaemonPoints
    from pistatsd.influx.reporter import InfluxReporter
    from pistatsd.influx.spool import SPOOL_NAME, Spool
    from pistatsd.influx.writer import tls_policy_for_cafile

    policy = None
    if config.influx_cafile is not None:
        try:
            policy = tls_policy_for_cafile(config.influx_cafile)
        except OSError as e:
            raise StartupError(
                f"--influx-cafile {config.influx_cafile}: cannot read it: {e.strerror}"
            ) from None
        except ValueError as e:
            raise StartupError(f"--influx-cafile {config.influx_cafile}: {e}") from None
    spool = Spool(os.path.join(state_dir or config.state_dir, SPOOL_NAME))
    return InfluxReporter(
        target=target_from_config(config),
        clock=reactor,
        points=DaemonPoints(
            tally=tally, sampler=sampler, sensors=sensors, host=socket.gethostname()
        ),
        interval=config.report_interval,
        queue_size=config.influx_queue,
        spool=spool,
        http=http,
        tls_policy=policy,
        random=random,
        create_database=config.influx_create_db,
        wall=wall,
    )


@frozen
class InfluxParts:
    """InfluxDB reporting, ready to compose: nothing but the "off" health while it is off.

    @ivar services: the reporter, when C{--influx} is given.
    @ivar health: C{/health}'s C{"influx"} (the reporter's state, or the off shape).
    @ivar metrics: the queue, spool and drops, for C{/metrics}.
    @ivar alert_listener: queues an C{alerts} point per alert change, when on.
    @ivar figures: the reporter's numbers the alerts read (C{influx.dropped}),
        none while it is off.
    """

    services: tuple[InfluxReporter, ...]
    health: Callable[[], Mapping[str, Any]]
    metrics: InfluxMetrics
    alert_listener: ChangeListener | None = None
    figures: Callable[[], Mapping[str, float]] = dict


def influx_parts(
    config: Config,
    reactor: IReactorTime,
    *,
    tally: Tally,
    sampler: LatestSnapshot,
    sensors: Sensors,
) -> InfluxParts:
    """The reporter for C{--influx}, or nothing; its health either way.

    @param sampler: the newest snapshot (the sampler, or a
        L{pistatsd.latest.LatestSnapshot} when the reporter is built first).
    """
    if config.influx is None:
        return InfluxParts(services=(), health=influx_off, metrics=InfluxMetrics(influx_off))
    from pistatsd.influx.alert_points import alert_listener

    reporter = influx_service(config, reactor, tally=tally, sampler=sampler, sensors=sensors)
    return InfluxParts(
        services=(reporter,),
        health=reporter.state,
        metrics=InfluxMetrics(reporter.state),
        alert_listener=alert_listener(reporter.enqueue, socket.gethostname()),
        figures=lambda: {"influx.dropped": float(reporter.dropped)},
    )
