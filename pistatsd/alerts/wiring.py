"""Builds the alerts from the configuration: rules, engine, change log, routes, health, metrics.

L{alerts_parts} is what the composition root calls; L{check_alerts} is the
start-up check, so a bad C{[alerts.NAME]} table stops C{twistd} with one
usage line before anything starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from attrs import frozen
from twisted.application.service import IService
from twisted.internet.interfaces import IReactorTime

from pistatsd.alerts.changelog import AlertsService, ChangeLog, ChangeStore
from pistatsd.alerts.engine import AlertEngine
from pistatsd.alerts.events import ChangeListener, CurrentAlerts
from pistatsd.alerts.metrics import AlertMetrics
from pistatsd.alerts.resource import AlertHistoryResource, AlertsResource, AlertTestResource
from pistatsd.alerts.rules import Rule
from pistatsd.alerts.tables import parse_rules
from pistatsd.config import Config
from pistatsd.history.alertlog import AlertLogTable
from pistatsd.history.service import HistoryService
from pistatsd.jsontypes import JSONObject
from pistatsd.notify.wiring import NotifyParts
from pistatsd.sensors.resource import MutationGuard
from pistatsd.web.routes import Route


def alert_rules(config: Config) -> tuple[Rule, ...]:
    """The rules of the configuration: built-ins as changed, then the TOML file's.

    @raise pistatsd.errors.StartupError: naming the table and the key.
    """
    return parse_rules(config.extra.get("alerts"))


def check_alerts(config: Config) -> None:
    """A start-up check: the C{[alerts.NAME]} tables are valid."""
    alert_rules(config)


@frozen
class AlertsParts:
    """The alerts, ready to compose.

    @ivar services: loads the change log at start, lets its last write finish at stop.
    @ivar observers: what the sampler tells of each snapshot (the engine).
    @ivar routes: C{/api/alerts}, C{/api/alerts/history}, C{/api/alerts/test}.
    @ivar health: C{/health}'s C{"alerts"}.
    @ivar metrics: C{pistatsd_alert_firing} and the change counters.
    @ivar current: the alerts as they stand, for other readers (MQTT).
    """

    services: tuple[IService, ...]
    observers: tuple[Callable[[Mapping[str, object]], None], ...]
    routes: tuple[Route, ...]
    health: Callable[[], JSONObject]
    metrics: tuple[AlertMetrics, ...]
    current: CurrentAlerts


def alerts_health(engine: AlertEngine, log: ChangeLog) -> JSONObject:
    """C{/health}'s C{"alerts"} (the keys of L{pistatsd.status.ALERTS_NONE})."""
    counts = engine.counts()
    return {
        "rules": len(engine.rules),
        "alerts": sum(counts.values()),
        "pending": counts["pending"],
        "firing": counts["firing"],
        "changes": engine.changes,
        "refused": engine.refused,
        "log_persistent": log.persistent,
        "log_size": len(log),
        "log_write_failures": log.write_failures,
        "log_unsaved_dropped": log.unsaved_dropped,
    }


def alerts_parts(
    config: Config,
    reactor: IReactorTime,
    *,
    notify: NotifyParts,
    history: HistoryService | None,
    listeners: Sequence[ChangeListener] = (),
    figures: Callable[[], Mapping[str, float]] = dict,
    wall: Callable[[], float] = time.time,
) -> AlertsParts:
    """The engine on the configured rules, its change log (in the history database
    when there is one), and its API.

    @param history: the history store, whose database keeps the change log;
        None keeps it in memory only.
    @param listeners: told of each change after the change log and the
        notifiers (the InfluxDB point).
    @param figures: the daemon's own numbers read as series (C{influx.dropped}).
    @raise pistatsd.errors.StartupError: for a bad C{[alerts.NAME]} table.
    """
    store: ChangeStore | None = None
    if history is not None:
        store = AlertLogTable(history)
    log = ChangeLog(store)
    engine = AlertEngine(
        alert_rules(config),
        clock=reactor,
        wall=wall,
        listeners=(log.add, notify.listener, *listeners),
        figures=figures,
        # With a stored log, nothing is evaluated before it is loaded: what fired
        # before a restart goes on firing instead of being notified again.
        restoring=store is not None,
    )
    guard = MutationGuard(config.api_token, action="sending a test alert")
    return AlertsParts(
        services=(AlertsService(log, engine),),
        observers=(engine.observe,),
        routes=(
            Route(
                "/api/alerts",
                AlertsResource(engine.current),
                link="alerts",
                below="/api/alerts/{unknown}",
            ),
            Route("/api/alerts/history", AlertHistoryResource(log), link="alerts_history"),
            Route("/api/alerts/test", AlertTestResource(notify.send_test, guard)),
        ),
        health=lambda: alerts_health(engine, log),
        metrics=(AlertMetrics(engine),),
        current=engine.current,
    )
