"""The alert engine: every rule on every sample, each alert's state, and its changes.

A sampler observer (L{AlertEngine.observe}, on the reactor thread): per
snapshot it reads every rule's values, moves each alert through
C{ok -> pending -> firing -> ok}, and hands the changes to the change log
and the listeners (notifiers, InfluxDB).

Two clocks, kept apart as the sampler does: C{for} is timed on the injected
clock (the reactor's, monotonic in the daemon), so a stepped wall clock
neither fires an alert early nor holds it back; C{since} and the change
times are dates from the explicit C{wall} clock.

A pattern rule has one alert per matching series; a match that disappears
(an unmounted filesystem, a deleted sensor) is dropped, after a last change
to ok if it was pending or firing, so whoever was told it fires hears that
it ended.  A plain rule whose series is missing from one sample (a sensor
that did not answer) keeps its state until the series is back.  The number
of alerts is bounded (L{MAX_ALERTS}): matches beyond it are refused,
counted and logged once per episode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from attrs import define
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from pistatsd.alerts.events import AlertChange, AlertStatus, ChangeListener, State
from pistatsd.alerts.rules import Rule, Sample
from pistatsd.episodes import Episode
from pistatsd.history.series import flatten

_log = Logger()

#: Alerts at most (a pattern over hundreds of interfaces must not grow memory,
#: labels in /metrics or MQTT topics without bound).
MAX_ALERTS = 1000

_LEVELS: Mapping[State, LogLevel] = {
    "pending": LogLevel.info,
    "firing": LogLevel.warn,
    "ok": LogLevel.info,
}


@define
class _Alert:
    """One alert's state; the engine's own, never handed out (L{AlertStatus} is)."""

    name: str
    series: str
    rule: Rule
    state: State
    since: float
    value: float | None
    #: Clock time the condition started to hold (for C{for}); None while ok.
    holding_since: float | None = None
    #: The previous sample's value, for conditions that compare (C{Grows}).
    previous: float | None = None
    #: The number of the last sample that read it.
    seen: int = 0

    def status(self) -> AlertStatus:
        return AlertStatus(
            name=self.name,
            series=self.series,
            state=self.state,
            since=self.since,
            value=self.value,
            severity=self.rule.severity,
        )


class AlertEngine:
    """Evaluates the rules on each snapshot and keeps the alerts' states.

    @param rules: the validated rules (L{pistatsd.alerts.tables.parse_rules}).
    @param clock: times C{for} (the reactor: monotonic in the daemon).
    @param wall: dates C{since} and the changes.
    @param listeners: told of each change in order, on the reactor thread;
        one that raises is logged once per episode and the others are
        still told.
    @param figures: the daemon's own numbers read as series (C{influx.dropped}).
    @param restoring: wait for L{restore} before evaluating anything (the
        change log is being loaded from the history database).
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        clock: IReactorTime,
        wall: Callable[[], float] = time.time,
        listeners: Sequence[ChangeListener] = (),
        figures: Callable[[], Mapping[str, float]] = dict,
        max_alerts: int = MAX_ALERTS,
        restoring: bool = False,
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._clock = clock
        self._wall = wall
        self._listeners = tuple(listeners)
        self._figures = figures
        self._max_alerts = max_alerts
        self._alerts: dict[str, _Alert] = {}
        self._names: frozenset[str] = frozenset()
        self._generation = 0
        self._samples = 0
        self._restoring = restoring
        self._restored: dict[str, AlertChange] = {}
        self._failing: set[int] = set()
        #: Changes since start, for C{/metrics}.
        self.changes = 0
        #: Matches refused at L{MAX_ALERTS}, for C{/metrics}.
        self.refused = 0
        self._failing_samples = Episode(
            _log,
            "alerts: evaluating the rules failed; the alerts keep their states until it works",
            "alerts: evaluating the rules works again after {n} failures",
            level=LogLevel.error,
            count_field="n",
        )
        self._refusing = Episode(
            _log,
            "alerts: {limit} alerts exist; refusing new matches (counted in "
            "pistatsd_alerts_refused_total)",
            "alerts: accepting new matches again after refusing {n}",
            count_field="n",
        )

    # -- reading -----------------------------------------------------------

    def current(self) -> list[AlertStatus]:
        """Every alert as it stands now, in rule order (L{CurrentAlerts})."""
        return [alert.status() for alert in self._alerts.values()]

    def counts(self) -> dict[State, int]:
        """How many alerts are in each state."""
        counts: dict[State, int] = {"ok": 0, "pending": 0, "firing": 0}
        for alert in self._alerts.values():
            counts[alert.state] += 1
        return counts

    # -- evaluating --------------------------------------------------------

    def restore(self, changes: Iterable[AlertChange]) -> None:
        """Take back what fired before a restart, from the stored changes (oldest first).

        An alert whose last change was to firing starts firing again, with its
        old C{since}, as soon as its rule reads it: if the condition still holds
        it goes on firing (no second notification), if not it resolves.  Until
        this is called (with C{restoring}), samples are not evaluated, so none
        can start the alert afresh.
        """
        last: dict[str, AlertChange] = {}
        for change in changes:
            last.pop(change.name, None)
            last[change.name] = change
        self._restored = {
            name: change
            for name, change in list(last.items())[-self._max_alerts :]
            if change.state == "firing" and name not in self._alerts
        }
        self._restoring = False

    def observe(self, snapshot: Mapping[str, object]) -> None:
        """A sampler observer: evaluate every rule on this snapshot; never raises.

        A failure (a bug) is logged with its traceback once, not every sample,
        and once more when evaluating works again.
        """
        if self._restoring:
            return
        try:
            self._evaluate(snapshot)
        except Exception:
            self._failing_samples.happened(Failure())
            return
        self._failing_samples.ended()

    def _evaluate(self, snapshot: Mapping[str, object]) -> None:
        series: Mapping[str, float] = flatten(snapshot)
        figures = self._figures()
        if figures:
            series = {**series, **figures}
        if len(series) != len(self._names) or not self._names.issuperset(series):
            self._names = frozenset(series)
            self._generation += 1
        sample = Sample(snapshot=snapshot, series=series, generation=self._generation)
        now, wall = self._clock.seconds(), self._wall()
        changes: list[AlertChange] = []
        alerts = self._alerts
        self._samples += 1
        stamp = self._samples
        seen = refused = 0
        for rule in self.rules:
            for match, name, value in rule.reader(sample):
                key = rule.name if match is None else f"{rule.name}:{match}"
                alert = alerts.get(key)
                if alert is None:
                    if len(alerts) >= self._max_alerts:
                        refused += 1
                        continue
                    alert = alerts[key] = self._new_alert(key, name, rule, now, wall)
                if alert.seen != stamp:
                    alert.seen = stamp
                    seen += 1
                self._step(alert, value, now, wall, changes)
        if seen != len(alerts):  # some were not read: plain rules keep, matches go
            for key in [k for k, a in alerts.items() if a.rule.pattern and a.seen != stamp]:
                gone = alerts.pop(key)
                if gone.state != "ok":
                    changes.append(self._change(gone, "ok", wall))
        if refused:
            self.refused += refused
            self._refusing.happened(limit=self._max_alerts)
        elif self._refusing.active:
            self._refusing.ended()
        if changes:
            self._tell(changes)

    def _new_alert(self, key: str, series: str, rule: Rule, now: float, wall: float) -> _Alert:
        """An alert seen for the first time: ok, or firing if it fired before a restart."""
        fired = self._restored.pop(key, None)
        if fired is None:
            return _Alert(key, series, rule, "ok", wall, None)
        return _Alert(key, series, rule, "firing", fired.time, fired.value, holding_since=now)

    def _step(
        self, alert: _Alert, value: float, now: float, wall: float, changes: list[AlertChange]
    ) -> None:
        """One sample's value: the state it leads to, and a change if it moved."""
        rule = alert.rule
        holds = rule.condition.holds(value, alert.previous, alert.state)
        alert.previous = value
        alert.value = value
        state = alert.state
        if not holds:
            alert.holding_since = None
            if state != "ok":
                changes.append(self._change(alert, "ok", wall))
            return
        if state == "firing":
            return
        if alert.holding_since is None:
            alert.holding_since = now
        target: State = "firing" if now - alert.holding_since >= rule.hold else "pending"
        if target != state:
            changes.append(self._change(alert, target, wall))

    def _change(self, alert: _Alert, state: State, wall: float) -> AlertChange:
        change = AlertChange(
            name=alert.name,
            series=alert.series,
            state=state,
            previous=alert.state,
            time=wall,
            value=alert.value,
            severity=alert.rule.severity,
        )
        alert.state = state
        alert.since = wall
        return change

    def _tell(self, changes: Iterable[AlertChange]) -> None:
        for change in changes:
            self.changes += 1
            _log.emit(
                _LEVELS[change.state],
                "alert {alert} {previous} -> {state} ({series} = {value}, {severity})",
                alert=change.name,
                previous=change.previous,
                state=change.state,
                series=change.series,
                value=change.value,
                severity=change.severity,
                alert_change=change,
            )
            for listener in self._listeners:
                self._guarded(listener, change)

    def _guarded(self, listener: ChangeListener, change: AlertChange) -> None:
        """C{listener(change)}; one that fails is logged once until it works again."""
        try:
            listener(change)
        except Exception:
            if id(listener) not in self._failing:
                self._failing.add(id(listener))
                _log.failure("alerts: change listener {listener!r} failed", listener=listener)
            return
        if id(listener) in self._failing:
            self._failing.discard(id(listener))
            _log.info("alerts: change listener {listener!r} works again", listener=listener)
