"""What an alert is and what a change of one says: shared by the rules, the notifiers and MQTT.

These are plain values so that every consumer (notifications, InfluxDB,
MQTT, the REST API) reads the same thing and none needs the rule engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from attrs import frozen

Severity = Literal["warning", "critical"]
State = Literal["ok", "pending", "firing"]

#: Severities from the least to the most urgent (for C{min-severity}).
SEVERITIES: tuple[Severity, ...] = ("warning", "critical")


@frozen
class AlertStatus:
    """One alert as it stands now.

    @ivar name: the rule's name, or C{RULE:MATCH} for one match of a pattern
        rule (C{filesystem-full:/boot}).
    @ivar series: the series the alert watches (C{filesystems./boot.percent}).
    @ivar since: wall-clock time (UNIX seconds) the alert entered C{state}.
    @ivar value: the last value seen, or C{None} before any.
    """

    name: str
    series: str
    state: State
    since: float
    value: float | None
    severity: Severity


@frozen
class AlertChange:
    """An alert moved from one state to another, or a reminder that it still fires.

    @ivar previous: the state it left (C{"firing"} for a reminder).
    @ivar time: wall-clock time (UNIX seconds) of the change.
    @ivar reminder: C{True} for a repeat notification of an alert still firing.
    """

    name: str
    series: str
    state: State
    previous: State
    time: float
    value: float | None
    severity: Severity
    reminder: bool = False


#: Something told of each change, on the reactor thread; must not block or raise.
ChangeListener = Callable[[AlertChange], None]
#: The alerts as they stand now, for readers that poll (MQTT, /health).
CurrentAlerts = Callable[[], Sequence[AlertStatus]]


def no_alerts() -> Sequence[AlertStatus]:
    """The current alerts of a daemon whose alerts are off."""
    return ()
