"""The alert engine on a task.Clock (SPEC §13): ok -> pending -> firing -> ok, for, clear,
hysteresis, patterns whose matches come and go, each built-in kind, listeners, bounds."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.alerts.engine import AlertEngine
from pistatsd.alerts.events import AlertChange
from pistatsd.alerts.tables import parse_rules

#: Every built-in off, so a test sees only its own rules.
NO_BUILTINS: dict[str, Any] = {
    name: {"enabled": False}
    for name in (
        "undervoltage",
        "throttled",
        "temperature",
        "filesystem-full",
        "filesystem-read-only",
        "memory",
        "sensor-failing",
        "influx-dropping",
    )
}


def snapshot(
    *,
    temperature: float | None = None,
    memory: float | None = None,
    filesystems: list[dict[str, Any]] | None = None,
    sensors: dict[str, dict[str, Any]] | None = None,
    throttled: dict[str, bool] | None = None,
) -> dict[str, Any]:
    """A snapshot with just the parts a test sets."""
    shot: dict[str, Any] = {"timestamp": 1.0}
    if temperature is not None:
        shot["temperature"] = {"celsius": temperature}
    if memory is not None:
        shot["memory"] = {"percent": memory}
    if filesystems is not None:
        shot["filesystems"] = filesystems
    if sensors is not None:
        shot["sensors"] = sensors
    if throttled is not None:
        shot["throttled"] = {"now": throttled, "since_boot": {}}
    return shot


def fs(mount: str, percent: float = 10.0, read_only: bool = False) -> dict[str, Any]:
    return {"mount": mount, "percent": percent, "inodes_percent": 1.0, "read_only": read_only}


class EngineCase(SynchronousTestCase):
    def build(
        self,
        tables: dict[str, Any] | None = None,
        builtins: bool = False,
        figures: dict[str, float] | None = None,
        **kw: Any,
    ) -> AlertEngine:
        merged = dict(tables or {}) if builtins else {**NO_BUILTINS, **(tables or {})}
        self.clock = Clock()
        self.clock.advance(1000)  # a monotonic clock is not the wall clock
        self.wall = [1_700_000_000.0]
        self.changes: list[AlertChange] = []
        self.figures = dict(figures or {})
        self.engine = AlertEngine(
            parse_rules(merged),
            clock=self.clock,
            wall=lambda: self.wall[0],
            listeners=kw.pop("listeners", (self.changes.append,)),
            figures=lambda: self.figures,
            **kw,
        )
        return self.engine

    def tick(self, seconds: float, shot: dict[str, Any]) -> None:
        """Time passes on both clocks, then a sample arrives."""
        self.clock.advance(seconds)
        self.wall[0] += seconds
        self.engine.observe(shot)

    def states(self) -> dict[str, str]:
        return {a.name: a.state for a in self.engine.current()}

    def transitions(self) -> list[tuple[str, str, str]]:
        return [(c.name, c.previous, c.state) for c in self.changes]


class StateMachineTests(EngineCase):
    def test_for_then_firing_then_clear_with_hysteresis(self) -> None:
        self.build({"hot": {"series": "temperature.celsius", "above": 80, "for": 60, "clear": 75}})
        self.tick(1, snapshot(temperature=50))
        self.assertEqual(self.states(), {"hot": "ok"})
        self.assertEqual(self.changes, [])
        self.tick(1, snapshot(temperature=80))  # reaching the threshold counts
        self.assertEqual(self.states(), {"hot": "pending"})
        pending_at = self.wall[0]
        self.tick(59, snapshot(temperature=85))
        self.assertEqual(self.states(), {"hot": "pending"})
        self.tick(1, snapshot(temperature=85))
        self.assertEqual(self.states(), {"hot": "firing"})
        self.tick(1, snapshot(temperature=76))  # below the threshold, above clear
        self.assertEqual(self.states(), {"hot": "firing"})
        self.tick(1, snapshot(temperature=75))  # clear itself still fires
        self.assertEqual(self.states(), {"hot": "firing"})
        self.tick(1, snapshot(temperature=74.9))
        self.assertEqual(self.states(), {"hot": "ok"})
        self.assertEqual(
            self.transitions(),
            [("hot", "ok", "pending"), ("hot", "pending", "firing"), ("hot", "firing", "ok")],
        )
        first = self.changes[0]
        self.assertEqual(
            (first.time, first.value, first.series), (pending_at, 80.0, "temperature.celsius")
        )
        self.assertEqual(self.changes[-1].value, 74.9)

    def test_pending_needs_the_threshold_not_the_clear(self) -> None:
        self.build({"hot": {"series": "temperature.celsius", "above": 80, "for": 10, "clear": 70}})
        self.tick(1, snapshot(temperature=81))
        self.tick(5, snapshot(temperature=75))  # under the threshold while pending: back to ok
        self.assertEqual(self.states(), {"hot": "ok"})
        self.tick(1, snapshot(temperature=81))
        self.tick(9, snapshot(temperature=81))
        self.assertEqual(self.states(), {"hot": "pending"})  # the delay started again
        self.tick(1, snapshot(temperature=81))
        self.assertEqual(self.states(), {"hot": "firing"})
        self.assertEqual(
            self.transitions(),
            [
                ("hot", "ok", "pending"),
                ("hot", "pending", "ok"),
                ("hot", "ok", "pending"),
                ("hot", "pending", "firing"),
            ],
        )

    def test_for_zero_fires_at_once(self) -> None:
        self.build({"cold": {"series": "temperature.celsius", "below": 5}})
        self.tick(1, snapshot(temperature=5))
        self.assertEqual(self.transitions(), [("cold", "ok", "firing")])
        self.tick(1, snapshot(temperature=5.1))
        self.assertEqual(self.transitions()[-1], ("cold", "firing", "ok"))

    def test_below_with_hysteresis(self) -> None:
        self.build({"cold": {"series": "temperature.celsius", "below": 5, "clear": 8}})
        self.tick(1, snapshot(temperature=4))
        self.tick(1, snapshot(temperature=7))
        self.assertEqual(self.states(), {"cold": "firing"})
        self.tick(1, snapshot(temperature=8.5))
        self.assertEqual(self.states(), {"cold": "ok"})

    def test_for_is_timed_on_the_clock_not_the_wall_clock(self) -> None:
        self.build({"hot": {"series": "temperature.celsius", "above": 80, "for": 60}})
        self.tick(1, snapshot(temperature=90))
        self.wall[0] += 86400  # NTP sets the date forward by a day
        self.tick(1, snapshot(temperature=90))
        self.assertEqual(self.states(), {"hot": "pending"})
        self.wall[0] -= 2 * 86400  # and back
        self.tick(59, snapshot(temperature=90))
        self.assertEqual(self.states(), {"hot": "firing"})
        [alert] = self.engine.current()
        self.assertEqual(alert.since, self.wall[0])  # since is a date

    def test_status_fields(self) -> None:
        self.build({"hot": {"series": "temperature.celsius", "above": 80, "severity": "critical"}})
        self.tick(1, snapshot(temperature=90))
        [alert] = self.engine.current()
        self.assertEqual(
            (alert.name, alert.series, alert.state, alert.value, alert.severity, alert.since),
            ("hot", "temperature.celsius", "firing", 90.0, "critical", self.wall[0]),
        )
        self.assertEqual(self.changes[0].severity, "critical")

    def test_missing_series_keeps_the_state_of_a_plain_rule(self) -> None:
        self.build({"hot": {"series": "temperature.celsius", "above": 80}})
        self.tick(1, snapshot())
        self.assertEqual(self.engine.current(), [])  # never seen: no alert
        self.tick(1, snapshot(temperature=90))
        self.tick(1, snapshot())  # one sample without the number
        self.assertEqual(self.states(), {"hot": "firing"})
        self.assertEqual(len(self.changes), 1)


class PatternTests(EngineCase):
    def test_one_alert_per_match_and_disappearing_matches(self) -> None:
        self.build({"full": {"series": "filesystems.*.percent", "above": 90, "clear": 85}})
        self.tick(1, snapshot(filesystems=[fs("/"), fs("/boot", 95), fs("/mnt/a.b", 50)]))
        self.assertEqual(
            self.states(), {"full:/": "ok", "full:/boot": "firing", "full:/mnt/a.b": "ok"}
        )
        [change] = self.changes
        self.assertEqual(change.series, "filesystems./boot.percent")
        self.tick(1, snapshot(filesystems=[fs("/"), fs("/mnt/a.b", 50), fs("/srv", 99)]))
        self.assertEqual(
            self.states(), {"full:/": "ok", "full:/mnt/a.b": "ok", "full:/srv": "firing"}
        )
        self.assertEqual(
            self.transitions(),
            [
                ("full:/boot", "ok", "firing"),
                ("full:/srv", "ok", "firing"),
                ("full:/boot", "firing", "ok"),  # gone: its end is told
            ],
        )
        self.tick(1, snapshot(filesystems=[]))
        self.assertEqual(self.engine.current(), [])

    def test_inodes_do_not_match_the_percent_pattern(self) -> None:
        self.build({"full": {"series": "filesystems.*.percent", "above": 90}})
        self.tick(1, snapshot(filesystems=[{"mount": "/", "percent": 1, "inodes_percent": 99}]))
        self.assertEqual(self.states(), {"full:/": "ok"})

    def test_sensor_pattern_match_is_the_sensor_name(self) -> None:
        self.build({"hot": {"series": "sensors.*", "above": 30}})
        self.tick(1, snapshot(sensors={"fan.speed": {"value": 40.0, "error": None}}))
        self.assertEqual(self.states(), {"hot:fan.speed": "firing"})

    def test_the_number_of_alerts_is_bounded(self) -> None:
        self.build({"full": {"series": "filesystems.*.percent", "above": 90}}, max_alerts=3)
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        many = [fs(f"/m{i}") for i in range(5)]
        self.tick(1, snapshot(filesystems=many))
        self.tick(1, snapshot(filesystems=many))
        self.assertEqual(len(self.engine.current()), 3)
        self.assertEqual(self.engine.refused, 4)
        refusing = [e for e in events if "refusing new matches" in e.get("log_format", "")]
        self.assertEqual(len(refusing), 1)  # once per episode
        self.tick(1, snapshot(filesystems=many[:2]))
        self.assertEqual(len(self.engine.current()), 2)
        ended = [e for e in events if "accepting new matches again" in e.get("log_format", "")]
        self.assertEqual(len(ended), 1)


class BuiltinKindTests(EngineCase):
    def test_temperature_builtin_fires_and_clears(self) -> None:
        self.build({"temperature": {"enabled": True}})
        self.tick(1, snapshot(temperature=80))
        self.tick(60, snapshot(temperature=81))
        self.assertEqual(self.states(), {"temperature": "firing"})
        self.assertEqual(self.changes[-1].severity, "critical")
        self.tick(1, snapshot(temperature=76))
        self.assertEqual(self.states(), {"temperature": "firing"})
        self.tick(1, snapshot(temperature=74))
        self.assertEqual(self.states(), {"temperature": "ok"})

    def test_all_builtins_on_a_quiet_machine(self) -> None:
        self.build(builtins=True)
        self.tick(
            1,
            snapshot(
                temperature=40,
                memory=30,
                filesystems=[fs("/")],
                sensors={"room": {"value": 21.0, "error": None}},
            ),
        )
        self.assertEqual(
            self.states(),
            {
                "temperature": "ok",
                "filesystem-full:/": "ok",
                "filesystem-read-only:/": "ok",
                "memory": "ok",
                "sensor-failing:room": "ok",
            },
        )  # no Pi flags, no InfluxDB: no such alerts
        self.assertEqual(self.changes, [])

    def test_undervoltage_and_throttled_only_on_a_pi(self) -> None:
        self.build({"undervoltage": {"enabled": True}, "throttled": {"enabled": True}})
        self.tick(1, snapshot(temperature=40))
        self.assertEqual(self.engine.current(), [])
        flags = {
            "under_voltage": True,
            "freq_capped": False,
            "throttled": False,
            "soft_temp_limit": False,
        }
        self.tick(1, snapshot(throttled=flags))
        self.assertEqual(self.states(), {"undervoltage": "firing", "throttled": "ok"})
        self.assertEqual(self.changes[-1].severity, "critical")
        self.tick(1, snapshot(throttled={**flags, "under_voltage": False, "throttled": True}))
        self.assertEqual(self.states(), {"undervoltage": "ok", "throttled": "firing"})

    def test_filesystem_full_builtin(self) -> None:
        self.build({"filesystem-full": {"enabled": True}})
        self.tick(1, snapshot(filesystems=[fs("/", 90)]))
        self.tick(1, snapshot(filesystems=[fs("/", 86)]))
        self.assertEqual(self.states(), {"filesystem-full:/": "firing"})
        self.tick(1, snapshot(filesystems=[fs("/", 84)]))
        self.assertEqual(self.states(), {"filesystem-full:/": "ok"})

    def test_read_only_fires_only_when_a_writable_one_becomes_read_only(self) -> None:
        self.build({"filesystem-read-only": {"enabled": True}})
        self.tick(1, snapshot(filesystems=[fs("/"), fs("/boot", read_only=True)]))
        self.assertEqual(
            self.states(), {"filesystem-read-only:/": "ok", "filesystem-read-only:/boot": "ok"}
        )
        self.tick(1, snapshot(filesystems=[fs("/", read_only=True), fs("/boot", read_only=True)]))
        self.assertEqual(self.transitions(), [("filesystem-read-only:/", "ok", "firing")])
        self.assertEqual(self.changes[0].series, "filesystems./.read_only")
        self.tick(1, snapshot(filesystems=[fs("/", read_only=True), fs("/boot", read_only=True)]))
        self.assertEqual(self.states()["filesystem-read-only:/"], "firing")
        self.tick(1, snapshot(filesystems=[fs("/"), fs("/boot", read_only=True)]))
        self.assertEqual(self.states()["filesystem-read-only:/"], "ok")
        self.assertEqual(self.states()["filesystem-read-only:/boot"], "ok")

    def test_memory_builtin_waits_five_minutes(self) -> None:
        self.build({"memory": {"enabled": True}})
        self.tick(1, snapshot(memory=95))
        self.tick(299, snapshot(memory=95))
        self.assertEqual(self.states(), {"memory": "pending"})
        self.tick(1, snapshot(memory=95))
        self.assertEqual(self.states(), {"memory": "firing"})

    def test_sensor_failing_after_five_minutes_of_errors(self) -> None:
        self.build({"sensor-failing": {"enabled": True}})
        bad = {"room": {"value": None, "error": "cannot read"}, "ok": {"value": 1.0, "error": None}}
        self.tick(1, snapshot(sensors=bad))
        self.assertEqual(
            self.states(), {"sensor-failing:room": "pending", "sensor-failing:ok": "ok"}
        )
        self.tick(300, snapshot(sensors=bad))
        self.assertEqual(self.states()["sensor-failing:room"], "firing")
        self.assertEqual(self.changes[-1].series, "sensors.room")
        self.tick(1, snapshot(sensors={"room": {"value": 2.0, "error": None}}))
        self.assertEqual(self.states(), {"sensor-failing:room": "ok"})  # "ok" was deleted

    def test_influx_dropping_while_the_count_grows(self) -> None:
        self.build({"influx-dropping": {"enabled": True}}, figures={"influx.dropped": 0})
        self.tick(1, snapshot())
        self.assertEqual(self.states(), {"influx-dropping": "ok"})
        self.figures["influx.dropped"] = 5
        self.tick(1, snapshot())
        self.assertEqual(self.states(), {"influx-dropping": "firing"})
        self.figures["influx.dropped"] = 9
        self.tick(1, snapshot())
        self.assertEqual(self.states(), {"influx-dropping": "firing"})
        self.tick(1, snapshot())  # stopped growing
        self.assertEqual(self.states(), {"influx-dropping": "ok"})
        self.assertEqual(len(self.changes), 2)

    def test_influx_dropping_absent_without_influx(self) -> None:
        self.build({"influx-dropping": {"enabled": True}})
        self.tick(1, snapshot())
        self.assertEqual(self.engine.current(), [])

    def test_disabled_builtin_never_alerts(self) -> None:
        self.build({"temperature": {"enabled": False}}, builtins=True)
        self.tick(1, snapshot(temperature=99))
        self.tick(100, snapshot(temperature=99))
        self.assertNotIn("temperature", self.states())

    def test_overridden_builtin_uses_the_new_threshold(self) -> None:
        self.build({"memory": {"above": 50, "for": 0}})
        self.tick(1, snapshot(memory=60))
        self.assertEqual(self.states(), {"memory": "firing"})


class ListenerTests(EngineCase):
    def test_a_failing_listener_is_logged_once_and_others_still_hear(self) -> None:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        heard: list[AlertChange] = []

        def broken(change: AlertChange) -> None:
            raise RuntimeError("boom")

        self.build(
            {"hot": {"series": "temperature.celsius", "above": 80}},
            listeners=(broken, heard.append),
        )
        for value in (90, 10, 90):
            self.tick(1, snapshot(temperature=value))
        self.assertEqual(len(heard), 3)
        failures = [
            e for e in events if "listener" in e.get("log_format", "") and e.get("log_failure")
        ]
        self.assertEqual(len(failures), 1)
        self.flushLoggedErrors(RuntimeError)

    def test_each_change_is_logged_once_with_its_fields(self) -> None:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.build({"hot": {"series": "temperature.celsius", "above": 80}})
        self.tick(1, snapshot(temperature=90))
        self.tick(1, snapshot(temperature=90))
        logged = [e for e in events if "alert_change" in e]
        self.assertEqual(len(logged), 1)
        self.assertEqual((logged[0]["alert"], logged[0]["state"]), ("hot", "firing"))
        self.assertEqual(logged[0]["log_level"], LogLevel.warn)
        self.assertEqual(self.engine.changes, 1)

    def test_a_broken_snapshot_never_raises(self) -> None:
        self.build({"hot": {"series": "temperature.celsius", "above": 80}})
        self.engine.observe({"filesystems": "nonsense", "sensors": 3, "temperature": []})
        self.assertEqual(self.engine.current(), [])

    def test_a_failing_evaluation_is_logged_once_per_episode(self) -> None:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        broken = [True]

        def figures() -> dict[str, float]:
            if broken[0]:
                raise RuntimeError("bug")
            return {}

        self.build({"hot": {"series": "temperature.celsius", "above": 80}})
        engine = AlertEngine(self.engine.rules, clock=self.clock, figures=figures)
        for _ in range(3):
            engine.observe(snapshot(temperature=90))
        self.assertEqual(engine.current(), [])
        broken[0] = False
        engine.observe(snapshot(temperature=90))
        self.assertEqual([a.state for a in engine.current()], ["firing"])
        failed = [e for e in events if "evaluating the rules failed" in e.get("log_format", "")]
        again = [e for e in events if "works again after" in e.get("log_format", "")]
        self.assertEqual((len(failed), len(again)), (1, 1))
        self.assertEqual(again[0]["n"], 3)
        self.flushLoggedErrors(RuntimeError)


class RestoreTests(EngineCase):
    """After a restart, what fired goes on firing (from the stored changes)."""

    def fired(self, name: str = "hot", when: float = 1_600_000_000.0) -> list[AlertChange]:
        return [
            AlertChange(name, "temperature.celsius", "pending", "ok", when - 60, 85.0, "warning"),
            AlertChange(name, "temperature.celsius", "firing", "pending", when, 86.0, "warning"),
        ]

    def test_still_holding_goes_on_firing_without_a_change(self) -> None:
        self.build(
            {"hot": {"series": "temperature.celsius", "above": 80, "for": 60}}, restoring=True
        )
        self.tick(1, snapshot(temperature=90))  # not evaluated before the log is back
        self.assertEqual(self.engine.current(), [])
        self.engine.restore(self.fired())
        self.tick(1, snapshot(temperature=90))
        [alert] = self.engine.current()
        self.assertEqual((alert.state, alert.since), ("firing", 1_600_000_000.0))
        self.assertEqual(self.changes, [])

    def test_no_longer_holding_resolves(self) -> None:
        self.build({"hot": {"series": "temperature.celsius", "above": 80, "clear": 75}})
        self.engine.restore(self.fired())
        self.tick(1, snapshot(temperature=76))  # inside the hysteresis: still firing
        self.assertEqual(self.states(), {"hot": "firing"})
        self.tick(1, snapshot(temperature=70))
        self.assertEqual(self.transitions(), [("hot", "firing", "ok")])

    def test_only_the_last_change_counts(self) -> None:
        self.build({"hot": {"series": "temperature.celsius", "above": 80}})
        resolved = AlertChange("hot", "temperature.celsius", "ok", "firing", 2e9, 50.0, "warning")
        self.engine.restore([*self.fired(), resolved])
        self.tick(1, snapshot(temperature=50))
        self.assertEqual(self.states(), {"hot": "ok"})
        self.assertEqual(self.changes, [])

    def test_pattern_matches_are_restored_by_name(self) -> None:
        self.build({"full": {"series": "filesystems.*.percent", "above": 90}})
        self.engine.restore(self.fired("full:/boot"))
        self.tick(1, snapshot(filesystems=[fs("/boot", 95), fs("/", 10)]))
        self.assertEqual(self.states(), {"full:/boot": "firing", "full:/": "ok"})
        self.assertEqual(self.changes, [])
