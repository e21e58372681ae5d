"""The history's figures for C{/metrics}, read from its state at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pistatsd.metric_families import counter_family, gauge_family

if TYPE_CHECKING:
    from prometheus_client.core import Metric


class HistoryCollector:
    """C{pistatsd_history_*}: size, rows waiting, last flush, failures, flush cost."""

    def __init__(self, state: Callable[[], Mapping[str, Any]]) -> None:
        self._state = state

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        yield gauge_family(
            "pistatsd_history_database_bytes",
            "Size of the history database file.",
            value=state["size_bytes"],
        )
        yield gauge_family(
            "pistatsd_history_pending_rows",
            "History rows in memory, not yet written.",
            value=state["pending_rows"],
        )
        yield counter_family(
            "pistatsd_history_dropped_rows",
            "History rows dropped because the in-memory buffer was full.",
            value=state["dropped_rows"],
        )
        yield counter_family(
            "pistatsd_history_flush_failures",
            "History writes that failed.",
            value=state["flush_failures"],
        )
        yield gauge_family(
            "pistatsd_history_queries",
            "History queries waiting for or running on the database thread.",
            value=state["queries_running"],
        )
        yield counter_family(
            "pistatsd_history_queries_refused",
            "History queries refused (503) because too many were waiting.",
            value=state["queries_refused"],
        )
        if state["last_flush"] is not None:
            yield gauge_family(
                "pistatsd_history_last_flush_timestamp_seconds",
                "When the history was last written (epoch).",
                value=state["last_flush"],
            )
        if state["last_flush_seconds"] is not None:
            yield gauge_family(
                "pistatsd_history_flush_duration_seconds",
                "How long the last history write took on the database thread.",
                value=state["last_flush_seconds"],
            )
