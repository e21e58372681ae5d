"""Request accounting shared by C{/health}, the InfluxDB reporter and /metrics.

L{Traffic} counts what the site answered and refused; L{CountByRoute}
labels each answered request once and hands the labels to the per-interval
L{RequestTally} (InfluxDB) and the Prometheus request counter.  Labels are
bounded: paths become route labels from the route table
(L{pistatsd.web.routes}: never raw URLs, which any client can vary without
limit), methods outside the usual few become C{OTHER}, and statuses become
their class (C{2xx}) for InfluxDB.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Protocol

from attrs import define, field
from twisted.web.http import Request

from pistatsd.web.routes import RouteTable

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})


@lru_cache(maxsize=64)
def method_label(method: bytes) -> str:
    """The method, or C{OTHER} for anything unusual."""
    text = method.decode("latin-1").upper()
    return text if text in KNOWN_METHODS else "OTHER"


@lru_cache(maxsize=128)
def status_class(code: int) -> str:
    """C{200} -> C{2xx}."""
    return f"{code // 100}xx"


@define
class RequestTally:
    """Requests received since the last L{take}: the total and a count per kind.

    The InfluxDB reporter takes (and so resets) it once per report interval.
    """

    total: int = 0
    by_kind: Counter[tuple[str, str, str]] = field(factory=Counter)

    def observe(self, method: str, route: str, status: str) -> None:
        """Count one request (labels already bounded)."""
        self.total += 1
        self.by_kind[(method, route, status)] += 1

    def take(self) -> tuple[int, dict[tuple[str, str, str], int]]:
        """Return the counts so far and start again from zero."""
        total, by_kind = self.total, dict(self.by_kind)
        self.total = 0
        self.by_kind.clear()
        return total, by_kind


@define
class Traffic:
    """What the site has answered since start: built before the site, read by C{/health}.

    @ivar total: requests answered, refused ones included.
    @ivar bodies_refused: request bodies refused for exceeding C{--max-body}.
    """

    total: int = 0
    bodies_refused: int = 0


class LabelledCounter(Protocol):
    """Counts one answered request by its bounded labels (the Prometheus counter)."""

    def count(self, method: str, route: str, code: int) -> None: ...


class CountByRoute:
    """A site observer: labels every answered request once, for InfluxDB and Prometheus."""

    def __init__(self, routes: RouteTable, tally: RequestTally, counter: LabelledCounter) -> None:
        self._routes = routes
        self._tally = tally
        self._counter = counter

    def __call__(self, request: Request) -> None:
        method, route = method_label(request.method), self._routes.label(request.path)
        self._tally.observe(method, route, status_class(request.code))
        self._counter.count(method, route, request.code)
