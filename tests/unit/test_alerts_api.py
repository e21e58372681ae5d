"""The alerts' faces (SPEC §13): /api/alerts, /api/alerts/history (limits, 400s),
POST /api/alerts/test (guarded like sensor changes: 401/403), /metrics, /health,
the change log in memory and in the history database, the InfluxDB point."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pistatsd.alerts.changelog import AlertsService, ChangeLog
from pistatsd.alerts.events import AlertChange
from pistatsd.alerts.wiring import AlertsParts, alerts_parts
from pistatsd.config import Config
from pistatsd.history import alertlog
from pistatsd.history.alertlog import AlertLogTable
from pistatsd.history.service import HistoryService
from pistatsd.history.threads import InlineWorker
from pistatsd.influx.alert_points import alert_point
from pistatsd.notify.wiring import NotifyParts, notify_parts
from pistatsd.status import ALERTS_NONE, DaemonStatus
from pistatsd.web.routes import RouteTable, mount
from pistatsd.web.site import PistatsdSite
from tests.support import Response, request
from tests.unit.test_alerts_engine import NO_BUILTINS, fs, snapshot

HOT = {"series": "temperature.celsius", "above": 80, "severity": "critical"}


def change(n: int, state: str = "firing", previous: str = "ok") -> AlertChange:
    return AlertChange(
        name=f"a{n}",
        series="cpu.percent",
        state=state,  # type: ignore[arg-type]
        previous=previous,  # type: ignore[arg-type]
        time=1000.0 + n,
        value=float(n),
        severity="warning",
    )


class FakeNotify:
    """The notifiers' face: remembers changes, answers the test with given results."""

    def __init__(self, results: Deferred[Mapping[str, str]] | None = None) -> None:
        self.changes: list[AlertChange] = []
        self.tests = 0
        self._results = results

    def send_test(self) -> Deferred[Mapping[str, str]]:
        self.tests += 1
        return self._results if self._results is not None else succeed({"phone": "sent"})

    def parts(self) -> NotifyParts:
        return NotifyParts(
            services=(),
            listener=self.changes.append,
            send_test=self.send_test,
            health=lambda: {"notifiers": {}},
            metrics=(),
        )


class APICase(SynchronousTestCase):
    def build(
        self,
        tables: dict[str, Any] | None = None,
        token: str | None = None,
        notify: FakeNotify | None = None,
        history: HistoryService | None = None,
    ) -> AlertsParts:
        self.clock = Clock()
        self.wall = [1_700_000_000.0]
        self.notify = notify or FakeNotify()
        config = Config(
            state_dir=self.mktemp(),
            api_token=token,
            extra={"alerts": {**NO_BUILTINS, **(tables or {})}},
        )
        self.parts = alerts_parts(
            config,
            self.clock,
            notify=self.notify.parts(),
            history=history,
            wall=lambda: self.wall[0],
        )
        root = Resource()
        mount(root, RouteTable(self.parts.routes).routes)
        self.site = PistatsdSite(root, reactor=self.clock, max_body=4096)
        return self.parts

    def sample(self, shot: dict[str, Any], seconds: float = 1.0) -> None:
        self.clock.advance(seconds)
        self.wall[0] += seconds
        for observer in self.parts.observers:
            observer(shot)

    def get(self, path: str, **kw: Any) -> tuple[Response, Any]:
        response = request(self.site, "GET", path, **kw)
        return response, json.loads(response.body)


class AlertsResourceTests(APICase):
    def test_lists_every_alert(self) -> None:
        self.build({"hot": HOT, "full": {"series": "filesystems.*.percent", "above": 90}})
        self.sample(snapshot(temperature=85, filesystems=[fs("/boot", 95), fs("/", 10)]))
        response, body = self.get("/api/alerts")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("content-type"), "application/json")
        self.assertEqual(
            body,
            {
                "alerts": [
                    {
                        "name": "hot",
                        "series": "temperature.celsius",
                        "state": "firing",
                        "since": self.wall[0],
                        "value": 85.0,
                        "severity": "critical",
                    },
                    {
                        "name": "full:/",
                        "series": "filesystems./.percent",
                        "state": "ok",
                        "since": self.wall[0],
                        "value": 10.0,
                        "severity": "warning",
                    },
                    {
                        "name": "full:/boot",
                        "series": "filesystems./boot.percent",
                        "state": "firing",
                        "since": self.wall[0],
                        "value": 95.0,
                        "severity": "warning",
                    },
                ]
            },
        )

    def test_empty_and_405_and_404(self) -> None:
        self.build()
        self.assertEqual(self.get("/api/alerts")[1], {"alerts": []})
        response = request(self.site, "DELETE", "/api/alerts")
        self.assertEqual(response.status, 405)
        self.assertEqual(response.header("allow"), "GET, HEAD")
        self.assertEqual(self.get("/api/alerts/nothing")[0].status, 404)

    def test_the_notifiers_hear_every_change(self) -> None:
        self.build({"hot": HOT})
        self.sample(snapshot(temperature=85))
        self.sample(snapshot(temperature=20))
        self.assertEqual(
            [(c.name, c.state) for c in self.notify.changes], [("hot", "firing"), ("hot", "ok")]
        )


class HistoryResourceTests(APICase):
    def test_newest_first_with_from(self) -> None:
        self.build({"hot": {**HOT, "for": 2}})
        for value in (85, 85, 85, 20):
            self.sample(snapshot(temperature=value))
        response, body = self.get("/api/alerts/history")
        self.assertEqual(response.status, 200)
        self.assertEqual(
            [(h["name"], h["from"], h["state"], h["value"]) for h in body["history"]],
            [
                ("hot", "firing", "ok", 20.0),
                ("hot", "pending", "firing", 85.0),
                ("hot", "ok", "pending", 85.0),
            ],
        )
        self.assertEqual(body["history"][0]["time"], self.wall[0])
        self.assertEqual(set(body["history"][0]), {"name", "state", "from", "time", "value"})

    def test_limit(self) -> None:
        self.build({"hot": HOT})
        for value in (85, 20) * 60:
            self.sample(snapshot(temperature=value))
        self.assertEqual(len(self.get("/api/alerts/history")[1]["history"]), 100)
        self.assertEqual(len(self.get("/api/alerts/history?limit=1000")[1]["history"]), 120)
        self.assertEqual(len(self.get("/api/alerts/history?limit=3")[1]["history"]), 3)

    def test_bad_limits_are_400_json(self) -> None:
        self.build()
        for query in ("0", "1001", "-1", "abc", "1.5", "", "10&limit=20", "1e3"):
            response, body = self.get(f"/api/alerts/history?limit={query}")
            self.assertEqual(response.status, 400, query)
            self.assertIn("limit", body["error"])


class TestResourceTests(APICase):
    def test_loopback_without_token_sends_and_answers_the_results(self) -> None:
        self.build()
        response = request(self.site, "POST", "/api/alerts/test")
        self.assertEqual(response.status, 200)
        self.assertEqual(json.loads(response.body), {"notifiers": {"phone": "sent"}})
        self.assertEqual(self.notify.tests, 1)

    def test_other_peers_and_proxied_requests_are_refused(self) -> None:
        self.build()
        response = request(self.site, "POST", "/api/alerts/test", peer="192.0.2.7")
        self.assertEqual(response.status, 403)
        self.assertIn(
            "sending a test alert is allowed only from this machine",
            json.loads(response.body)["error"],
        )
        response = request(
            self.site, "POST", "/api/alerts/test", headers={"X-Forwarded-For": "192.0.2.7"}
        )
        self.assertEqual(response.status, 403)
        self.assertEqual(self.notify.tests, 0)

    def test_token(self) -> None:
        self.build(token="s3cret")
        response = request(self.site, "POST", "/api/alerts/test")
        self.assertEqual(response.status, 401)
        self.assertEqual(response.header("www-authenticate"), 'Bearer realm="pistatsd"')
        response = request(
            self.site, "POST", "/api/alerts/test", headers={"Authorization": "Bearer nope"}
        )
        self.assertEqual(response.status, 403)
        self.assertEqual(self.notify.tests, 0)
        response = request(
            self.site,
            "POST",
            "/api/alerts/test",
            headers={"Authorization": "Bearer s3cret"},
            peer="192.0.2.7",
        )
        self.assertEqual(response.status, 200)
        self.assertEqual(self.notify.tests, 1)

    def test_get_is_405_and_a_failing_notifier_is_500_json(self) -> None:
        self.build(notify=FakeNotify(fail(RuntimeError("bug"))))
        self.assertEqual(self.get("/api/alerts/test")[0].status, 405)
        response = request(self.site, "POST", "/api/alerts/test")
        self.assertEqual(response.status, 500)
        self.assertEqual(json.loads(response.body), {"error": "internal server error"})
        self.flushLoggedErrors(RuntimeError)

    def test_the_stub_notifiers_answer_nothing_sent(self) -> None:
        parts = notify_parts(Config(state_dir=self.mktemp()), Clock())
        self.assertEqual(self.successResultOf(parts.send_test()), {})


class MetricsAndHealthTests(APICase):
    def scrape(self) -> str:
        registry = CollectorRegistry(auto_describe=False)
        for collector in self.parts.metrics:
            registry.register(collector)
        return generate_latest(registry).decode()

    def test_firing_gauge_and_counters(self) -> None:
        self.build({"hot": HOT, "cool": {"series": "temperature.celsius", "below": 0}})
        self.sample(snapshot(temperature=85))
        text = self.scrape()
        self.assertIn('pistatsd_alert_firing{alert="hot",severity="critical"} 1.0', text)
        self.assertIn('pistatsd_alert_firing{alert="cool",severity="warning"} 0.0', text)
        self.assertIn("pistatsd_alert_changes_total 1.0", text)
        self.assertIn("pistatsd_alerts_refused_total 0.0", text)

    def test_health_has_the_same_keys_with_or_without_alerts(self) -> None:
        self.build({"hot": {**HOT, "for": 5}})
        self.sample(snapshot(temperature=85))
        health = self.parts.health()
        self.assertEqual(set(health), set(ALERTS_NONE))
        self.assertEqual(
            (
                health["rules"],
                health["alerts"],
                health["pending"],
                health["firing"],
                health["changes"],
            ),
            (1, 1, 1, 0, 1),
        )
        self.assertFalse(health["log_persistent"])
        document = DaemonStatus(clock=Clock(), alerts=self.parts.health).health()
        self.assertEqual(document["alerts"]["pending"], 1)
        bare = DaemonStatus(clock=Clock()).health()
        self.assertEqual(set(bare["alerts"]), set(ALERTS_NONE))
        self.assertEqual(bare["notify"], {"notifiers": {}})


class ChangeLogTests(SynchronousTestCase):
    def test_memory_is_bounded_newest_kept(self) -> None:
        log = ChangeLog(limit=5)
        for n in range(12):
            log.add(change(n))
        self.assertEqual(len(log), 5)
        self.assertEqual([c.name for c in log.recent(3)], ["a11", "a10", "a9"])
        self.assertEqual(len(log.recent(100)), 5)

    def test_writes_are_batched_one_at_a_time(self) -> None:
        class Store:
            def __init__(self) -> None:
                self.saved: list[list[AlertChange]] = []
                self.pending: list[Deferred[None]] = []

            def save(self, changes: Any) -> Deferred[None]:
                self.saved.append(list(changes))
                d: Deferred[None] = Deferred()
                self.pending.append(d)
                return d

            def load(self) -> Deferred[tuple[list[AlertChange], int]]:
                return succeed(([], 0))

        store = Store()
        log = ChangeLog(store)
        log.add(change(1))
        log.add(change(2))
        log.add(change(3))
        self.assertEqual([[c.name for c in b] for b in store.saved], [["a1"]])
        idle = log.idle()
        self.assertNoResult(idle)
        store.pending[0].callback(None)
        self.assertEqual([[c.name for c in b] for b in store.saved], [["a1"], ["a2", "a3"]])
        self.assertNoResult(idle)  # the second batch is being written
        store.pending[1].errback(RuntimeError("disk full"))
        self.successResultOf(idle)
        self.assertEqual(log.write_failures, 1)
        self.assertEqual(len(log), 3)  # still in memory

    def test_changes_waiting_to_be_written_are_bounded(self) -> None:
        class Stuck:
            def __init__(self) -> None:
                self.saved: list[list[AlertChange]] = []
                self.pending: list[Deferred[None]] = []

            def save(self, changes: Any) -> Deferred[None]:
                self.saved.append(list(changes))
                d: Deferred[None] = Deferred()
                self.pending.append(d)
                return d

            def load(self) -> Deferred[tuple[list[AlertChange], int]]:
                return succeed(([], 0))

        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        store = Stuck()
        log = ChangeLog(store, limit=4)
        for n in range(10):  # the first write hangs; 9 wait, 4 may
            log.add(change(n))
        self.assertEqual(log.unsaved_dropped, 5)
        waiting = [e for e in events if "wait to be written" in e.get("log_format", "")]
        self.assertEqual(len(waiting), 1)
        store.pending[0].callback(None)
        self.assertEqual([c.name for c in store.saved[1]], ["a6", "a7", "a8", "a9"])
        store.pending[1].callback(None)
        again = [e for e in events if "written again after" in e.get("log_format", "")]
        self.assertEqual((len(again), again[0]["n"]), (1, 5))

    def test_loaded_changes_go_behind_the_new_ones(self) -> None:
        class Store:
            def save(self, changes: Any) -> Deferred[None]:
                return succeed(None)

            def load(self) -> Deferred[tuple[list[AlertChange], int]]:
                return succeed(([change(n) for n in range(10)], 2))

        log = ChangeLog(Store(), limit=6)
        log.add(change(100))
        AlertsService(log).startService()
        self.assertEqual([c.name for c in log.recent(10)], ["a100", "a9", "a8", "a7", "a6", "a5"])
        self.assertEqual(log.skipped_rows, 2)


class PersistenceTests(SynchronousTestCase):
    """The change log in a real SQLite file (the history's), run inline."""

    def history(self, path: str) -> HistoryService:
        service = HistoryService(path, clock=Clock(), worker=InlineWorker())
        service.startService()
        self.addCleanup(lambda: service.running and self.successResultOf(service.stopService()))
        return service

    def test_survives_a_restart_bounded_bad_rows_skipped(self) -> None:
        path = self.mktemp()
        history = self.history(path)
        table = AlertLogTable(history, keep=5)
        self.successResultOf(table.save([change(n) for n in range(3)]))
        self.successResultOf(table.save([change(n) for n in range(3, 8)]))
        self.successResultOf(history.stopService())
        db = sqlite3.connect(path)
        self.assertEqual(db.execute(f"SELECT COUNT(*) FROM {alertlog.TABLE}").fetchone(), (5,))
        db.execute(
            f"INSERT INTO {alertlog.TABLE} (name, series, state, previous, time, value, severity) "
            "VALUES ('x', 'cpu.percent', 'exploded', 'ok', 1, 1, 'warning')"
        )
        db.commit()
        db.close()
        history = self.history(path)
        changes, skipped = self.successResultOf(AlertLogTable(history, keep=5).load())
        self.assertEqual([c.name for c in changes], ["a4", "a5", "a6", "a7"])
        self.assertEqual(skipped, 1)
        self.assertEqual(changes[-1], change(7))

    def test_through_the_wiring(self) -> None:
        path = self.mktemp()
        history = self.history(path)
        config = Config(state_dir=self.mktemp(), extra={"alerts": {**NO_BUILTINS, "hot": HOT}})
        clock = Clock()
        parts = alerts_parts(config, clock, notify=FakeNotify().parts(), history=history)
        for service in parts.services:
            service.startService()
        for value in (85, 20):
            parts.observers[0](snapshot(temperature=value))
        self.assertTrue(parts.health()["log_persistent"])
        for service in parts.services:
            self.successResultOf(service.stopService())
        self.successResultOf(history.stopService())
        history = self.history(path)
        again = alerts_parts(config, clock, notify=FakeNotify().parts(), history=history)
        for service in again.services:
            service.startService()
        resource = again.routes[1].resource
        assert resource is not None
        root = Resource()
        mount(root, RouteTable(again.routes).routes)
        site = PistatsdSite(root, reactor=clock, max_body=4096)
        body = json.loads(request(site, "GET", "/api/alerts/history").body)
        self.assertEqual(
            [(h["name"], h["state"]) for h in body["history"]], [("hot", "ok"), ("hot", "firing")]
        )

    def test_a_history_that_cannot_open_fails_the_work(self) -> None:
        history = HistoryService(self.mktemp(), clock=Clock(), worker=InlineWorker())
        self.failureResultOf(history.run_on_database(lambda db: None), RuntimeError)


class InfluxPointTests(SynchronousTestCase):
    def test_alert_point_line(self) -> None:
        point = alert_point(change(3), "pi")
        assert point is not None
        self.assertEqual(
            point.line(),
            'alerts,alert=a3,severity=warning,host=pi state="firing",level=2i,value=3.0 1003000',
        )

    def test_resolution_without_a_value(self) -> None:
        resolved = AlertChange(
            name="full:/boot",
            series="filesystems./boot.percent",
            state="ok",
            previous="firing",
            time=5.0,
            value=None,
            severity="critical",
        )
        point = alert_point(resolved, "pi")
        assert point is not None
        self.assertEqual(
            point.line(),
            'alerts,alert=full:/boot,severity=critical,host=pi state="ok",level=0i 5000',
        )
