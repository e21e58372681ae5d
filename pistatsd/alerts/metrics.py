"""C{/metrics} for alerts: one 1/0 gauge per alert, and how many changes and refusals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pistatsd.alerts.engine import AlertEngine
from pistatsd.metric_families import counter_family, gauge_family

if TYPE_CHECKING:
    from prometheus_client.core import Metric


class AlertMetrics:
    """Read from the engine at scrape time; the alert count is bounded by the engine."""

    def __init__(self, engine: AlertEngine) -> None:
        self._engine = engine

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        firing = gauge_family(
            "pistatsd_alert_firing",
            "1 while the alert fires, 0 otherwise (pending included).",
            labels=["alert", "severity"],
        )
        for alert in self._engine.current():
            firing.add_metric([alert.name, alert.severity], 1 if alert.state == "firing" else 0)
        yield firing
        yield counter_family(
            "pistatsd_alert_changes",
            "Alert state changes since start.",
            value=self._engine.changes,
        )
        yield counter_family(
            "pistatsd_alerts_refused",
            "Pattern matches refused because the number of alerts is at its bound.",
            value=self._engine.refused,
        )
