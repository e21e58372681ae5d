"""Request accounting shared by the InfluxDB reporter and /metrics.

Every request passes through here, so the label functions are cached (a
bounded LRU: the same few paths come again and again).  Labels are bounded:
paths become route templates (never raw URLs, which any
client can vary without limit), methods outside the usual few become
C{OTHER}, and statuses become their class (C{2xx}).
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

from attrs import define, field

from pistatsd.web.stats import PARTS

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})

#: Exact paths that are their own route.
_EXACT = frozenset(
    {
        "/",
        "/alive",
        "/stats",
        "/stats/history",
        "/sum",
        "/api",
        "/api/sensors",
        "/health",
        "/metrics",
        "/ws/echo",
        "/ws/broadcast",
    }
)
#: The parts served as C{/stats/NAME}: one list, the one the resource tree mounts.
_STATS_PARTS = frozenset(PARTS)


@lru_cache(maxsize=4096)
def route_of(path: bytes) -> str:
    """The route template of a request path (without its query string)."""
    text = path.decode("latin-1")
    if len(text) > 1 and text.endswith("/"):
        text = text[:-1]
    if text in _EXACT:
        return text
    if text.endswith(".zzz"):
        return "/{path}.zzz"
    if text.startswith("/stats/"):
        part = text[len("/stats/") :]
        return text if part in _STATS_PARTS else "/stats/{unknown}"
    if text.startswith("/api/sensors/"):
        return "/api/sensors/{name}"
    if text.startswith("/api/"):
        return "/api/{unknown}"
    return "/{static}"


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
