"""An C{alerts} point for each alert change, through the reporter's queue (SPEC §13)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pistatsd.alerts.events import AlertChange
from pistatsd.influx.lineprotocol import Point, timestamp_of

#: The state as a number too, for graphs: ok 0, pending 1, firing 2.
STATE_LEVELS = {"ok": 0, "pending": 1, "firing": 2}


def alert_point(change: AlertChange, host: str) -> Point | None:
    """C{alerts,alert=NAME,severity=S,host=H state="firing",level=2i,value=V <time>}."""
    return Point.of(
        "alerts",
        (("alert", change.name), ("severity", change.severity), ("host", host)),
        (
            ("state", change.state),
            ("level", STATE_LEVELS[change.state]),
            ("value", change.value),
        ),
        timestamp_of(change.time),
    )


def alert_listener(
    enqueue: Callable[[Sequence[Point]], None], host: str
) -> Callable[[AlertChange], None]:
    """A change listener that queues one point per change for the next write."""

    def listener(change: AlertChange) -> None:
        point = alert_point(change, host)
        if point is not None:
            enqueue([point])

    return listener
