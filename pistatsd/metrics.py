"""Prometheus metrics: one registry per daemon, gauges read at scrape time.

Counters that must see every event (HTTP requests) are updated as requests
finish; everything else (connections, WebSockets, the InfluxDB queue, the
machine's own figures, sensors) is read from its owner when scraped, so the
numbers are never stale and nothing is updated on the hot path.  The
registry, and with it C{prometheus_client}, waits for the first scrape
(L{ScrapeRegistry}, L{pistatsd.metric_families}).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from pistatsd.jsontypes import JSONMapping
from pistatsd.metric_families import counter_family, gauge_family
from pistatsd.metrics_machine import machine_families
from pistatsd.web.connections import ConnectionCounter
from pistatsd.web.traffic import Traffic

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric
    from prometheus_client.registry import Collector as PrometheusCollector


class Collector(Protocol):
    """What C{prometheus_client}'s registry asks of a collector."""

    def collect(self) -> Iterator[Metric]: ...

    def describe(self) -> list[Metric]: ...


class _ScrapeTime:
    """A collector whose families depend on what is running: nothing described up front."""

    def describe(self) -> list[Metric]:
        return []


class ConnectionMetrics(_ScrapeTime):
    """Open and refused connections, and refused request bodies."""

    def __init__(self, connections: ConnectionCounter, traffic: Traffic) -> None:
        self._connections = connections
        self._traffic = traffic

    def collect(self) -> Iterator[Metric]:
        yield gauge_family(
            "pistatsd_http_connections",
            "Open HTTP connections.",
            value=self._connections.open("http"),
        )
        yield counter_family(
            "pistatsd_connections_refused",
            "Connections refused at the connection cap.",
            value=self._connections.refused,
        )
        yield counter_family(
            "pistatsd_request_bodies_refused",
            "Request bodies refused for exceeding --max-body.",
            value=self._traffic.bodies_refused,
        )


class WebSocketMetrics(_ScrapeTime):
    """The hub's clients and how the broadcast copes with slow ones."""

    def __init__(self, detail: Callable[[], JSONMapping]) -> None:
        self._detail = detail

    def collect(self) -> Iterator[Metric]:
        detail = self._detail()
        yield gauge_family(
            "pistatsd_websocket_clients", "Open WebSocket connections.", value=detail["clients"]
        )
        yield gauge_family(
            "pistatsd_broadcast_clients",
            "Clients of /ws/broadcast.",
            value=detail["broadcast_clients"],
        )
        yield counter_family(
            "pistatsd_broadcast_skipped_sends",
            "Broadcast messages not sent to a client whose connection was not draining.",
            value=detail["skipped_sends"],
        )
        yield counter_family(
            "pistatsd_broadcast_dropped_clients",
            "Broadcast clients dropped for staying stuck.",
            value=detail["dropped_clients"],
        )


class LatestSnapshot(Protocol):
    """The sampler, as the system gauges read it."""

    @property
    def latest(self) -> JSONMapping: ...


class SystemMetrics(_ScrapeTime):
    """The machine's own figures, from the sampler's latest snapshot."""

    def __init__(self, sampler: LatestSnapshot) -> None:
        self._sampler = sampler

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = self._sampler.latest
        except RuntimeError:  # not sampled yet
            return
        gauges = [
            ("pistatsd_cpu_percent", "CPU use over the last sample window.", ("cpu", "percent")),
            ("pistatsd_memory_percent", "Memory in use.", ("memory", "percent")),
            ("pistatsd_memory_available_bytes", "Memory available.", ("memory", "available")),
            ("pistatsd_swap_percent", "Swap in use.", ("swap", "percent")),
            ("pistatsd_temperature_celsius", "Temperature.", ("temperature", "celsius")),
            ("pistatsd_uptime_seconds", "Machine uptime.", ("uptime", "seconds")),
            ("pistatsd_disk_percent", "Root file system in use.", ("disk", "percent")),
        ]
        for name, doc, (part, key) in gauges:
            section = snapshot.get(part)
            value = section.get(key) if isinstance(section, Mapping) else None
            if isinstance(value, int | float):
                yield gauge_family(name, doc, value=value)
        load = (snapshot.get("cpu") or {}).get("load")
        if load:
            family = gauge_family("pistatsd_load", "Load average.", labels=["period"])
            for period, value in zip(("1m", "5m", "15m"), load, strict=False):
                family.add_metric([period], value)
            yield family
        yield from machine_families(snapshot)


class InfluxMetrics(_ScrapeTime):
    """The InfluxDB reporter's queue, spool and drops (nothing while reporting is off)."""

    def __init__(self, state: Callable[[], JSONMapping]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        if not state.get("enabled"):
            return
        for key, doc in (
            ("queued", "InfluxDB points waiting to be written."),
            ("spooled", "InfluxDB points spooled to disk."),
        ):
            yield gauge_family(f"pistatsd_influx_{key}_points", doc, value=state.get(key, 0))
        yield counter_family(
            "pistatsd_influx_dropped_points",
            "InfluxDB points dropped (queue full or refused by the server).",
            value=state.get("dropped", 0),
        )


class MQTTMetrics(_ScrapeTime):
    """The MQTT connection and what went through it (nothing while MQTT is off)."""

    def __init__(self, state: Callable[[], JSONMapping]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        if not state.get("enabled"):
            return
        yield gauge_family(
            "pistatsd_mqtt_connected",
            "1 while a session with the MQTT broker is open.",
            value=1 if state.get("connected") else 0,
        )
        yield gauge_family(
            "pistatsd_mqtt_entities",
            "Home Assistant entities announced by discovery.",
            value=state.get("entities", 0),
        )
        for key, name, doc in (
            ("publishes", "publishes", "MQTT messages acknowledged by the broker."),
            ("publish_failures", "publish_failures", "MQTT messages not acknowledged."),
            ("reconnects", "reconnects", "MQTT sessions opened after the first."),
            ("connect_failures", "connect_failures", "Failed attempts to reach the broker."),
            ("states_replaced", "states_replaced", "States replaced by a newer one unsent."),
        ):
            yield counter_family(f"pistatsd_mqtt_{name}", doc, value=state.get(key, 0))


class SensorMetrics(_ScrapeTime):
    """The user sensors' readings."""

    def __init__(self, readings: Callable[[], Mapping[str, float | None]]) -> None:
        self._readings = readings

    def collect(self) -> Iterator[Metric]:
        family = gauge_family("pistatsd_sensor_value", "User sensor readings.", labels=["sensor"])
        for name, value in sorted(self._readings().items()):
            if value is not None:
                family.add_metric([name], value)
        yield family


class RequestCounter:
    """Requests answered, by method, route template and status, since start.

    A plain dict increment per request: C{prometheus_client}'s labelled
    C{Counter} takes a lock and builds a child per call, which showed up as
    several per cent of a request's cost.  The family is built at scrape time.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}

    def count(self, method: str, route: str, code: int) -> None:
        """Count one answered request (labels already bounded)."""
        key = (method, route, code)
        self.counts[key] = self.counts.get(key, 0) + 1

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = counter_family(
            "pistatsd_http_requests",
            "HTTP requests answered, by method, route template and status.",
            labels=["method", "route", "status"],
        )
        for (method, route, code), value in sorted(self.counts.items()):
            family.add_metric([method, route, str(code)], value)
        yield family


def registry_of(
    requests: RequestCounter, collectors: Iterable[Collector | PrometheusCollector]
) -> CollectorRegistry:
    """One registry: the request counter, the process's own figures and each part's collector."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.process_collector import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(requests)
    ProcessCollector(registry=registry)
    for collector in collectors:
        registry.register(collector)
    return registry


class ScrapeRegistry:
    """The daemon's registry (L{registry_of}), built at the first scrape.

    Importing C{prometheus_client} costs about 2 MiB, and most daemons are
    never scraped; the first scrape pays its import once, on the reactor
    (tens of milliseconds).
    """

    def __init__(
        self, requests: RequestCounter, collectors: Sequence[Collector | PrometheusCollector]
    ) -> None:
        self._requests = requests
        self._collectors = tuple(collectors)
        self._registry: CollectorRegistry | None = None

    @property
    def built(self) -> bool:
        """Whether a scrape has built the registry yet."""
        return self._registry is not None

    def __call__(self) -> CollectorRegistry:
        if self._registry is None:
            self._registry = registry_of(self._requests, self._collectors)
        return self._registry
