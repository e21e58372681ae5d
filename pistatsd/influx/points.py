"""The points pistatsd reports every interval, built from the daemon's own counters.

Each group (requests, system, the whole machine, sensors) is built on its own: a broken sensor
driver or a sampler that has not sampled yet costs that group only, never the
request counts, which are the data the original math server wrote and the
one series people graph.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from attrs import define, field
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from pistatsd.episodes import Episodes
from pistatsd.influx.lineprotocol import Point
from pistatsd.influx.machine_points import machine_points
from pistatsd.jsontypes import JSONMapping
from pistatsd.metrics import LatestSnapshot

T = TypeVar("T")

_log = Logger()

RequestKind = tuple[str, str, str]
"""(method, route template, status class), as counted by L{RequestTally}."""


class Tally(Protocol):
    """What the reporter needs of L{pistatsd.web.traffic.RequestTally}."""

    def take(self) -> tuple[int, dict[RequestKind, int]]:
        """The counts since the last call, resetting them."""


class Sensors(Protocol):
    """What the reporter needs of the sensors service."""

    def readings(self) -> dict[str, float | None]:
        """Current reading of every sensor, None for one that cannot be read."""


def request_points(
    host: str, total: int, by_kind: Mapping[RequestKind, int], timestamp: int
) -> list[Point]:
    """The seed-compatible C{requests} point (always, zero included) and one
    C{http_requests} point per (method, route, status class) seen."""
    points = [
        Point(
            "requests",
            (("request", "GETs_per_minute"), ("host", host)),
            (("requests_number", int(total)),),
            timestamp,
        )
    ]
    for (method, route, status), count in sorted(by_kind.items()):
        points.append(
            Point(
                "http_requests",
                (("host", host), ("method", method), ("path", route), ("status", status)),
                (("count", int(count)),),
                timestamp,
            )
        )
    return points


def _number(
    snapshot: JSONMapping, section: str, key: str, index: int | None = None
) -> float | None:
    """A number from the snapshot as a float, or None when absent or null.

    Always a float: InfluxDB fixes a field's type on first write, and psutil
    may hand out an int one day and a float the next.
    """
    part = snapshot.get(section)
    if not isinstance(part, Mapping):
        return None
    value = part.get(key)
    if index is not None:
        value = value[index] if isinstance(value, list | tuple) and len(value) > index else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def system_point(snapshot: JSONMapping, host: str, timestamp: int) -> Point | None:
    """C{system,host=H cpu=..,memory_percent=..,temperature=..,load1=..,uptime=..,cpu_freq_mhz=..};
    null values (no temperature sensor, CPU warming up, no cpufreq) are left out."""
    return Point.of(
        "system",
        (("host", host),),
        (
            ("cpu", _number(snapshot, "cpu", "percent")),
            ("memory_percent", _number(snapshot, "memory", "percent")),
            ("temperature", _number(snapshot, "temperature", "celsius")),
            ("load1", _number(snapshot, "cpu", "load", 0)),
            ("uptime", _number(snapshot, "uptime", "seconds")),
            ("cpu_freq_mhz", _number(snapshot, "cpu", "freq_mhz")),
        ),
        timestamp,
    )


def sensor_points(host: str, readings: Mapping[str, float | None], timestamp: int) -> list[Point]:
    """One C{sensors,host=H,sensor=NAME value=..} point per sensor that has a reading."""
    points = []
    for name, value in sorted(readings.items()):
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        point = Point.of(
            "sensors", (("host", host), ("sensor", name)), (("value", float(value)),), timestamp
        )
        if point is not None:
            points.append(point)
    return points


@define
class DaemonPoints:
    """Collects one interval's points from the tally, the sampler and the sensors.

    Called by the reporter once per report interval (and once more at
    shutdown, for the partial last interval).
    """

    tally: Tally
    sampler: LatestSnapshot
    """Anything with a C{latest} snapshot (L{pistatsd.sampler.Sampler})."""
    sensors: Sensors | None = None
    host: str = field(factory=socket.gethostname)
    """The host tag until the sampler has a snapshot; then the snapshot's hostname."""
    _failing: Episodes = field(
        factory=lambda: Episodes(
            _log,
            "InfluxDB report: cannot collect {part}; leaving it out",
            "InfluxDB report: {part} can be collected again",
            level=LogLevel.critical,
        ),
        init=False,
    )

    def __call__(self, timestamp: int) -> list[Point]:
        """Every point for the interval ending now; never raises."""
        snapshot = self._guard("snapshot", lambda: self.sampler.latest)
        if isinstance(snapshot, Mapping) and isinstance(snapshot.get("hostname"), str):
            self.host = snapshot["hostname"] or self.host
        host = self.host
        points: list[Point] = []
        counts = self._guard("requests", self.tally.take)
        if counts is not None:
            total, by_kind = counts
            points.extend(request_points(host, total, by_kind, timestamp))
        if isinstance(snapshot, Mapping):
            system = self._guard("system", lambda: system_point(snapshot, host, timestamp))
            if system is not None:
                points.append(system)
            points.extend(
                self._guard("machine", lambda: machine_points(snapshot, host, timestamp)) or []
            )
        if self.sensors is not None:
            sensors = self.sensors
            readings = self._guard("sensors", sensors.readings)
            if readings:
                points.extend(
                    self._guard("sensors", lambda: sensor_points(host, readings, timestamp)) or []
                )
        return points

    def _guard(self, part: str, get: Callable[[], T]) -> T | None:
        """C{get()}, or None when it fails: logged once per episode, per part."""
        try:
            value = get()
        except RuntimeError:
            if part == "snapshot":  # the sampler has not sampled yet: expected at start
                return None
            self._failing.happened(part, Failure(), part=part)
            return None
        except Exception:
            self._failing.happened(part, Failure(), part=part)
            return None
        self._failing.ended(part, part=part)
        return value
