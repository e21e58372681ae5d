"""Prometheus metric families, with C{prometheus_client} imported at the first scrape.

Most daemons are never scraped.  C{prometheus_client} with what its
exposition module imports (C{http.server}, C{wsgiref}, C{socketserver})
is about 2 MiB of an idle daemon; the collectors build their families only
in C{collect}, so they call these instead of the classes, and the registry
itself is built at the first C{/metrics} request (L{pistatsd.metrics}).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


def counter_family(
    name: str,
    documentation: str,
    value: float | None = None,
    labels: Sequence[str] | None = None,
) -> CounterMetricFamily:
    """C{prometheus_client}'s C{CounterMetricFamily}, imported when first needed."""
    from prometheus_client.core import CounterMetricFamily

    return CounterMetricFamily(name, documentation, value=value, labels=labels)


def gauge_family(
    name: str,
    documentation: str,
    value: float | None = None,
    labels: Sequence[str] | None = None,
) -> GaugeMetricFamily:
    """C{prometheus_client}'s C{GaugeMetricFamily}, imported when first needed."""
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(name, documentation, value=value, labels=labels)
