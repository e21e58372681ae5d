"""The C{pistatsd_notify_*} families, read from the deliveries when scraped."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pistatsd.notify.delivery import Delivery


class NotifyMetrics(Collector):
    """Sent, failed, dropped and queued messages, one sample per notifier."""

    def __init__(self, deliveries: Sequence[Delivery]) -> None:
        self._deliveries = tuple(deliveries)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        families = (
            (CounterMetricFamily, "sent", "Notifications delivered.", "sent"),
            (CounterMetricFamily, "failed", "Delivery attempts that failed.", "failed"),
            (CounterMetricFamily, "dropped", "Notifications given up on.", "dropped"),
            (GaugeMetricFamily, "queued", "Notifications not delivered yet.", "queued"),
        )
        for family_type, name, doc, attribute in families:
            family = family_type(f"pistatsd_notify_{name}", doc, labels=["notifier"])
            for delivery in self._deliveries:
                family.add_metric([delivery.name], getattr(delivery, attribute))
            yield family
