"""The face of the history that the web layer uses (L{HistoryReader})."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from attrs import frozen
from twisted.internet.defer import Deferred


@frozen
class Resolution:
    """One roll-up level: a stored point covers C{step} seconds; C{keep} seconds are kept."""

    step: int
    keep: int


@frozen
class SeriesData:
    """An answer to L{HistoryReader.query}: one shared time axis and each series on it."""

    start: float
    end: float
    step: int
    #: Bucket starts, oldest first.
    t: list[float]
    #: Series name to C{{"min": [...], "avg": [...], "max": [...]}}, aligned with C{t}.
    values: dict[str, dict[str, list[float | None]]]


class HistoryBusy(Exception):
    """Too many queries wait for the database already: ask again shortly (a 503)."""


class HistoryReader(Protocol):
    """Read access to the stored history; never waits on the database."""

    resolutions: Sequence[Resolution]

    def names(self) -> Deferred[list[str]]:
        """Every series ever stored, and the ones being recorded now."""

    def oldest(self) -> Deferred[float | None]:
        """The epoch of the oldest stored point, C{None} when nothing is stored."""

    def query(
        self, names: Sequence[str], start: float, end: float, points: int
    ) -> Deferred[SeriesData]:
        """Min, mean and max of C{names} over C{[start, end)} in at most about C{points}
        points; unknown names fail with C{KeyError}, and with L{HistoryBusy} while
        too many queries are waiting."""
