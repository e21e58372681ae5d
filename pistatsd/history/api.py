"""The face of the history store that the web layer reads.

PLACEHOLDER, to be replaced by the store's own module: only the contract
types, so that the web layer can be written and tested against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from attrs import frozen
from twisted.internet.defer import Deferred


@frozen
class Resolution:
    """One roll-up level of the store."""

    step: int
    """Seconds per stored point."""
    keep: int
    """Seconds kept."""


@frozen
class SeriesData:
    """An answer: several series on one shared time axis, min/avg/max per point."""

    start: float
    """The "from" of the answer, aligned to C{step}."""
    end: float
    """The "to" of the answer."""
    step: int
    t: list[float]
    """The shared time axis: bucket starts, epoch seconds."""
    values: dict[str, dict[str, list[float | None]]]
    """Name -> {"min", "avg", "max"} lists, as long as C{t}; None where no data."""


class HistoryReader(Protocol):
    """What the store answers; every method works off the reactor thread."""

    resolutions: Sequence[Resolution]

    def names(self) -> Deferred[list[str]]:
        """Every series ever stored (and the live ones)."""

    def oldest(self) -> Deferred[float | None]:
        """Epoch of the oldest stored point, None when empty."""

    def query(
        self, names: Sequence[str], start: float, end: float, points: int
    ) -> Deferred[SeriesData]:
        """From the finest resolution whose step >= (end-start)/points and covers C{start}
        (else the coarsest that covers most); unknown names errback with KeyError."""
