"""What a rule is: a reader of values from each sample, a condition on them, and a delay.

Most rules are thresholds on one series of the snapshot (L{SeriesReader},
L{Threshold}); a series pattern (C{filesystems.*.percent}) makes one alert
per matching series.  The few built-in rules that are not thresholds on a
flattened number plug in their own reader (the filesystems' C{read_only}
flags, the sensors' read errors) or condition (a count that grows), so the
engine treats every rule alike: it asks the reader for C{(match, series,
value)} readings and the condition whether each holds.

Threshold semantics: C{above = 80} holds from 80 up (C{below = 10} from 10
down).  A firing alert returns to ok only past C{clear}: below it for
C{above}, over it for C{below}; C{clear} defaults to the threshold.  A
pending alert needs the threshold itself, so an alert never fires with a
value that has not reached it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from attrs import define, field, frozen

from pistatsd.alerts.events import Severity, State

#: The top-level parts a series name may start with: the snapshot's (SPEC §12)
#: and the daemon's own figures (C{influx.dropped}).
KNOWN_PARTS = frozenset(
    {
        "cpu",
        "memory",
        "swap",
        "temperature",
        "disk",
        "load",
        "net",
        "filesystems",
        "disk_io",
        "sensors",
        "fans",
        "throttled",
        "processes",
        "influx",
    }
)

#: One value a rule read from a sample: the pattern's match (None for a plain
#: rule), the series it comes from, and the number the condition looks at.
Reading = tuple[str | None, str, float]


@frozen
class Sample:
    """One snapshot as the rules read it.

    @ivar snapshot: the sampler's snapshot (shared: never mutated).
    @ivar series: its numbers by series name (L{pistatsd.history.series.flatten})
        plus the daemon's own figures (C{influx.dropped}).
    @ivar generation: changes exactly when the set of series names changes, so
        pattern readers can keep their matches between samples.
    """

    snapshot: Mapping[str, object]
    series: Mapping[str, float]
    generation: int


class Reader(Protocol):
    """Where a rule's values come from, each sample."""

    @property
    def series(self) -> str:
        """The series name or pattern shown for the rule."""
        ...

    def __call__(self, sample: Sample) -> Iterator[Reading]:
        """Every reading of this sample; cheap (runs on the reactor every sample)."""
        ...


class Condition(Protocol):
    """Whether a reading is a problem, given the alert's state and its previous value."""

    def holds(self, value: float, previous: float | None, state: State) -> bool:
        """True when the alert should be (or stay) pending or firing."""
        ...


@frozen
class SeriesReader:
    """One series by name: one reading when the sample has that number, none otherwise."""

    series: str

    def __call__(self, sample: Sample) -> Iterator[Reading]:
        value = sample.series.get(self.series)
        if value is not None:
            yield None, self.series, value


@define
class PatternReader:
    """Every series matching C{prefix*suffix}; the match is what the C{*} stands for.

    The matching names are computed again only when the set of names
    changes (L{Sample.generation}), so a sample costs one lookup per match.
    """

    series: str
    _prefix: str = field(init=False)
    _suffix: str = field(init=False)
    _generation: int = field(init=False, default=-1)
    _matches: tuple[tuple[str, str], ...] = field(init=False, default=())

    def __attrs_post_init__(self) -> None:
        self._prefix, _, self._suffix = self.series.partition("*")

    def match(self, name: str) -> str | None:
        """The text the C{*} stands for in C{name}, or None when it does not match."""
        prefix, suffix = self._prefix, self._suffix
        if (
            len(name) > len(prefix) + len(suffix)
            and name.startswith(prefix)
            and name.endswith(suffix)
        ):
            return name[len(prefix) : len(name) - len(suffix)]
        return None

    def __call__(self, sample: Sample) -> Iterator[Reading]:
        if sample.generation != self._generation:
            found = ((self.match(name), name) for name in sample.series)
            self._matches = tuple(sorted((m, name) for m, name in found if m is not None))
            self._generation = sample.generation
        series = sample.series
        for match, name in self._matches:
            value = series.get(name)
            if value is not None:
                yield match, name, value


@frozen
class ReadOnlyFlags:
    """Each filesystem's C{read_only} flag (1 read-only, 0 writable), by mount point."""

    series: str = "filesystems.*.read_only"

    def __call__(self, sample: Sample) -> Iterator[Reading]:
        filesystems = sample.snapshot.get("filesystems")
        if not isinstance(filesystems, list | tuple):
            return
        for fs in filesystems:
            if isinstance(fs, Mapping):
                mount, flag = fs.get("mount"), fs.get("read_only")
                if isinstance(mount, str) and isinstance(flag, bool):
                    yield mount, f"filesystems.{mount}.read_only", 1.0 if flag else 0.0


@frozen
class SensorErrors:
    """Each sensor's read error (1 when its reading has one, 0 when it reads), by name."""

    series: str = "sensors.*"

    def __call__(self, sample: Sample) -> Iterator[Reading]:
        sensors = sample.snapshot.get("sensors")
        if not isinstance(sensors, Mapping):
            return
        for name, reading in sensors.items():
            if isinstance(reading, Mapping):
                yield name, f"sensors.{name}", 0.0 if reading.get("error") is None else 1.0


@frozen
class Threshold:
    """C{value >= threshold} (or C{<=} for C{below}), firing until past C{clear}."""

    threshold: float
    clear: float
    above: bool = True

    def holds(self, value: float, previous: float | None, state: State) -> bool:
        limit = self.clear if state == "firing" else self.threshold
        return value >= limit if self.above else value <= limit


@frozen
class Becomes:
    """A 0/1 flag that rises from 0: a flag already 1 when first seen never fires."""

    def holds(self, value: float, previous: float | None, state: State) -> bool:
        if value < 1:
            return False
        return state != "ok" or previous == 0


@frozen
class Grows:
    """A count that grew since the previous sample; ends as soon as it stops growing."""

    def holds(self, value: float, previous: float | None, state: State) -> bool:
        return previous is not None and value > previous


@frozen
class Rule:
    """One alert rule, validated (L{pistatsd.alerts.config.parse_rules}).

    @ivar hold: seconds the condition must hold before pending becomes firing
        (the TOML key C{for}); 0 fires at once.
    @ivar pattern: whether the reader gives one alert per match (C{RULE:MATCH}).
    """

    name: str
    reader: Reader
    condition: Condition
    hold: float = 0.0
    severity: Severity = "warning"
    pattern: bool = False

    @property
    def series(self) -> str:
        """The series name or pattern the rule watches."""
        return self.reader.series

    def alert_name(self, match: str | None) -> str:
        """C{RULE} for a plain rule, C{RULE:MATCH} for one match of a pattern rule."""
        return self.name if match is None else f"{self.name}:{match}"
