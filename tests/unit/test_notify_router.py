"""Which notifier gets what: min-severity, fire and resolve, reminders on the clock."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.alerts.events import AlertChange, Severity, State
from pistatsd.notify.messages import Message
from pistatsd.notify.router import Route, Router
from pistatsd.notify.settings import NotifierSettings
from tests.influxd import capture_all_logs


def change(
    state: State,
    previous: State,
    name: str = "hot",
    severity: Severity = "warning",
    reminder: bool = False,
) -> AlertChange:
    return AlertChange(
        name=name,
        series="temperature.celsius",
        state=state,
        previous=previous,
        time=1000.0,
        value=81.0,
        severity=severity,
        reminder=reminder,
    )


class RouterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.all: list[Message] = []
        self.critical: list[Message] = []
        self.router = Router(
            [
                Route(
                    NotifierSettings(name="all", kind="webhook", target="https://h/x", repeat=600),
                    self.all.append,
                ),
                Route(
                    NotifierSettings(
                        name="pager",
                        kind="ntfy",
                        target="https://n/t",
                        min_severity="critical",
                    ),
                    self.critical.append,
                ),
            ],
            self.clock,
            "pi",
        )

    def events(self, messages: list[Message]) -> list[tuple[str, str]]:
        return [(m.event, m.alert) for m in messages]

    def test_fire_and_resolve(self) -> None:
        self.router(change("pending", "ok"))
        self.router(change("firing", "pending"))
        self.router(change("ok", "firing"))
        self.assertEqual(self.events(self.all), [("firing", "hot"), ("resolved", "hot")])

    def test_pending_and_back_says_nothing(self) -> None:
        self.router(change("pending", "ok"))
        self.router(change("ok", "pending"))
        self.assertEqual(self.all, [])

    def test_min_severity(self) -> None:
        self.router(change("firing", "ok", name="warm"))
        self.router(change("firing", "ok", name="burning", severity="critical"))
        self.assertEqual(self.events(self.all), [("firing", "warm"), ("firing", "burning")])
        self.assertEqual(self.events(self.critical), [("firing", "burning")])

    def test_reminders_every_repeat_until_resolved(self) -> None:
        self.router(change("firing", "pending"))
        self.clock.pump([300.0] * 4)  # 1200 s: two reminders
        self.assertEqual(
            self.events(self.all), [("firing", "hot"), ("reminder", "hot"), ("reminder", "hot")]
        )
        self.assertEqual(self.all[-1].since, 1000.0, "a reminder says when it fired")
        self.assertEqual(self.router.reminders, 1)
        self.router(change("ok", "firing"))
        self.assertEqual(self.router.reminders, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(6000.0)
        self.assertEqual(self.events(self.all)[-1], ("resolved", "hot"))
        self.assertEqual(len(self.all), 4)

    def test_no_reminders_without_repeat(self) -> None:
        self.router(change("firing", "ok", severity="critical"))
        self.clock.advance(100000.0)
        self.assertEqual(len(self.critical), 1)

    def test_reminders_per_alert(self) -> None:
        self.router(change("firing", "ok", name="a"))
        self.clock.advance(300.0)
        self.router(change("firing", "ok", name="b"))
        self.clock.advance(300.0)
        self.router(change("ok", "firing", name="a"))
        self.clock.advance(300.0)
        self.assertEqual(
            self.events(self.all),
            [
                ("firing", "a"),
                ("firing", "b"),
                ("reminder", "a"),
                ("resolved", "a"),
                ("reminder", "b"),
            ],
        )

    def test_the_rules_own_reminders_are_ignored(self) -> None:
        self.router(change("firing", "firing", reminder=True))
        self.assertEqual(self.all, [])

    def test_stop_cancels_reminders(self) -> None:
        self.router(change("firing", "ok"))
        self.router.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_failing_queue_does_not_reach_the_rules(self) -> None:
        def broken(message: Message) -> None:
            raise RuntimeError("boom")

        events = capture_all_logs(self)
        router = Router(
            [Route(NotifierSettings(name="x", kind="webhook", target="https://h/x"), broken)],
            self.clock,
            "pi",
        )
        router(change("firing", "ok"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(len([e for e in events if "log_failure" in e]), 1)
