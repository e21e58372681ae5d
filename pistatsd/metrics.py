"""Prometheus metrics: one registry per daemon, gauges read at scrape time.

Counters that must see every event (HTTP requests) are updated as requests
finish; everything else (connections, WebSockets, the InfluxDB queue, the
machine's own figures, sensors) is read from its owner when scraped, so the
numbers are never stale and nothing is updated on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from pistatsd.metrics_machine import machine_families


class DaemonCollector:
    """Reads the daemon's parts when Prometheus scrapes."""

    def __init__(
        self,
        *,
        site: Any,
        sampler: Any,
        hub: Any = None,
        reporter_state: Callable[[], Mapping[str, Any]] | None = None,
        sensor_readings: Callable[[], Mapping[str, float | None]] | None = None,
    ) -> None:
        self._site = site
        self._sampler = sampler
        self._hub = hub
        self._reporter_state = reporter_state
        self._sensor_readings = sensor_readings

    def describe(self) -> list[Metric]:
        # Nothing to describe up front: families depend on the machine
        # (e.g. no temperature gauge without sensors).
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._connections()
        yield from self._websockets()
        yield from self._system()
        yield from self._influx()
        yield from self._sensors()

    def _connections(self) -> Iterator[Metric]:
        site = self._site
        yield GaugeMetricFamily(
            "pistatsd_http_connections", "Open HTTP connections.", value=site.open_connections
        )
        yield CounterMetricFamily(
            "pistatsd_connections_refused",
            "Connections refused at the connection cap.",
            value=site.connections_refused,
        )
        yield CounterMetricFamily(
            "pistatsd_request_bodies_refused",
            "Request bodies refused for exceeding --max-body.",
            value=site.bodies_refused,
        )

    def _websockets(self) -> Iterator[Metric]:
        if self._hub is None:
            return
        detail = self._hub.detail()
        yield GaugeMetricFamily(
            "pistatsd_websocket_clients", "Open WebSocket connections.", value=detail["clients"]
        )
        yield GaugeMetricFamily(
            "pistatsd_broadcast_clients",
            "Clients of /ws/broadcast.",
            value=detail["broadcast_clients"],
        )
        yield CounterMetricFamily(
            "pistatsd_broadcast_skipped_sends",
            "Broadcast messages not sent to a client whose connection was not draining.",
            value=detail["skipped_sends"],
        )
        yield CounterMetricFamily(
            "pistatsd_broadcast_dropped_clients",
            "Broadcast clients dropped for staying stuck.",
            value=detail["dropped_clients"],
        )

    def _system(self) -> Iterator[Metric]:
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
                yield GaugeMetricFamily(name, doc, value=value)
        load = (snapshot.get("cpu") or {}).get("load")
        if load:
            family = GaugeMetricFamily("pistatsd_load", "Load average.", labels=["period"])
            for period, value in zip(("1m", "5m", "15m"), load, strict=False):
                family.add_metric([period], value)
            yield family
        yield from machine_families(snapshot)

    def _influx(self) -> Iterator[Metric]:
        if self._reporter_state is None:
            return
        state = self._reporter_state()
        if not state.get("enabled"):
            return
        for key, doc in (
            ("queued", "InfluxDB points waiting to be written."),
            ("spooled", "InfluxDB points spooled to disk."),
        ):
            yield GaugeMetricFamily(f"pistatsd_influx_{key}_points", doc, value=state.get(key, 0))
        yield CounterMetricFamily(
            "pistatsd_influx_dropped_points",
            "InfluxDB points dropped (queue full or refused by the server).",
            value=state.get("dropped", 0),
        )

    def _sensors(self) -> Iterator[Metric]:
        if self._sensor_readings is None:
            return
        family = GaugeMetricFamily(
            "pistatsd_sensor_value", "User sensor readings.", labels=["sensor"]
        )
        for name, value in sorted(self._sensor_readings().items()):
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
        family = CounterMetricFamily(
            "pistatsd_http_requests",
            "HTTP requests answered, by method, route template and status.",
            labels=["method", "route", "status"],
        )
        for (method, route, code), value in sorted(self.counts.items()):
            family.add_metric([method, route, str(code)], value)
        yield family


class Metrics:
    """The registry and the request counter that feeds it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = RequestCounter()
        self.registry.register(self.requests)
        ProcessCollector(registry=self.registry)

    def count_request(self, method: str, route: str, code: int) -> None:
        """Count one answered request (labels already bounded)."""
        self.requests.count(method, route, code)

    def add(self, collector: DaemonCollector) -> None:
        """Register the scrape-time collector."""
        self.registry.register(collector)
