"""The rules every daemon has unless its configuration turns them off (SPEC §13).

Each is written in the keys of a C{[alerts.NAME]} table, so a table of the
same name changes it with the same keys (C{[alerts.memory] for = 600}) or
turns it off (C{enabled = false}).  The ones that are not thresholds on one
series bring their own reader or condition; of those only C{for},
C{severity} and C{enabled} can be changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from attrs import frozen

from pistatsd.alerts.rules import Becomes, Condition, Grows, Reader, ReadOnlyFlags, SensorErrors


@frozen
class Builtin:
    """One built-in rule: its table, and the reader or condition of its own, if any.

    @ivar table: the keys of an equivalent C{[alerts.NAME]} table.
    @ivar reader: builds the reader, for the rules that do not read one series.
    @ivar condition: the condition, for the rules that are not thresholds.
    """

    name: str
    table: Mapping[str, object]
    reader: Callable[[], Reader] | None = None
    condition: Condition | None = None

    @property
    def special(self) -> bool:
        """Whether it is more than a threshold on a series (fewer keys may change)."""
        return self.reader is not None or self.condition is not None


BUILTINS: tuple[Builtin, ...] = (
    # Raspberry Pi firmware flags, "now": only where the snapshot has them.
    Builtin(
        "undervoltage", {"series": "throttled.under_voltage", "above": 1, "severity": "critical"}
    ),
    Builtin("throttled", {"series": "throttled.throttled", "above": 1}),
    Builtin(
        "temperature",
        {
            "series": "temperature.celsius",
            "above": 80,
            "for": 60,
            "clear": 75,
            "severity": "critical",
        },
    ),
    Builtin("filesystem-full", {"series": "filesystems.*.percent", "above": 90, "clear": 85}),
    Builtin(
        "filesystem-read-only",
        {"series": "filesystems.*.read_only", "severity": "critical"},
        reader=ReadOnlyFlags,
        condition=Becomes(),
    ),
    Builtin("memory", {"series": "memory.percent", "above": 90, "for": 300}),
    Builtin(
        "sensor-failing",
        {"series": "sensors.*", "above": 1, "for": 300},
        reader=SensorErrors,
    ),
    Builtin("influx-dropping", {"series": "influx.dropped"}, condition=Grows()),
)

BUILTINS_BY_NAME: Mapping[str, Builtin] = {rule.name: rule for rule in BUILTINS}
