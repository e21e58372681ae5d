"""The C{pistatsd_notify_*} families, read from the deliveries when scraped."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from pistatsd.metric_families import counter_family, gauge_family
from pistatsd.notify.delivery import Delivery

if TYPE_CHECKING:
    from prometheus_client.core import Metric


class NotifyMetrics:
    """Sent, failed, dropped and queued messages, one sample per notifier."""

    def __init__(self, deliveries: Sequence[Delivery]) -> None:
        self._deliveries = tuple(deliveries)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        families = (
            (counter_family, "sent", "Notifications delivered.", "sent"),
            (counter_family, "failed", "Delivery attempts that failed.", "failed"),
            (counter_family, "dropped", "Notifications given up on.", "dropped"),
            (gauge_family, "queued", "Notifications not delivered yet.", "queued"),
        )
        for family_type, name, doc, attribute in families:
            family = family_type(f"pistatsd_notify_{name}", doc, labels=["notifier"])
            for delivery in self._deliveries:
                family.add_metric([delivery.name], getattr(delivery, attribute))
            yield family
