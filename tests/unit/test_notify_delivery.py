"""One notifier's queue: order, bound, retries with backoff, drops, and what is logged."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.influx.backoff import Backoff
from pistatsd.notify.delivery import Delivery, Outcome, Verdict
from pistatsd.notify.messages import Message
from pistatsd.notify.redact import Scrubber
from tests.influxd import capture_all_logs, rendered


def message(n: int) -> Message:
    return Message(
        event="firing",
        alert=f"alert-{n}",
        series="cpu.percent",
        severity="warning",
        value=float(n),
        since=0.0,
        host="pi",
    )


class FakeSender:
    """Answers each attempt when the test says so; counts what it was asked."""

    kind = "webhook"
    target = "https://hooks.example/***"

    def __init__(self) -> None:
        self.attempts: list[tuple[Message, Deferred[Outcome]]] = []
        self.closed = False

    def send(self, message: Message) -> Deferred[Outcome]:
        d: Deferred[Outcome] = Deferred()
        self.attempts.append((message, d))
        return d

    def answer(self, verdict: Verdict, detail: str = "", retry_after: float | None = None) -> None:
        pending = [d for _, d in self.attempts if not d.called]
        self.assertOne(pending)
        pending[0].callback(Outcome(verdict, detail, retry_after))

    @staticmethod
    def assertOne(pending: list[Deferred[Outcome]]) -> None:
        assert len(pending) == 1, f"{len(pending)} attempts in flight"

    def close(self) -> Deferred[None]:
        self.closed = True
        d: Deferred[None] = Deferred()
        d.callback(None)
        return d

    def sent_alerts(self) -> list[str]:
        return [m.alert for m, _ in self.attempts]


class DeliveryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.sender = FakeSender()
        self.delivery = Delivery(
            "hook",
            self.sender,
            self.clock,
            deadline=60.0,
            scrub=Scrubber(["topic-secret"]),
            backoff=Backoff(5.0, 600.0, random=lambda: 1.0),
            queue_size=3,
        )
        self.delivery.start()

    def delays(self) -> list[float]:
        """Pending timers other than the attempt's deadline."""
        return [c.getTime() - self.clock.seconds() for c in self.clock.getDelayedCalls()]

    def test_one_at_a_time_in_order(self) -> None:
        for n in range(3):
            self.delivery.put(message(n))
        self.assertEqual(self.sender.sent_alerts(), ["alert-0"])
        self.assertEqual(self.delivery.queued, 3)
        self.sender.answer(Verdict.SENT)
        self.sender.answer(Verdict.SENT)
        self.assertEqual(self.sender.sent_alerts(), ["alert-0", "alert-1", "alert-2"])
        self.sender.answer(Verdict.SENT)
        self.assertEqual((self.delivery.sent, self.delivery.queued), (3, 0))

    def test_nothing_is_sent_before_start(self) -> None:
        delivery = Delivery("d", self.sender, self.clock, deadline=60.0, scrub=str)
        delivery.put(message(9))
        self.assertEqual(self.sender.attempts, [])
        delivery.start()
        self.assertEqual(self.sender.sent_alerts(), ["alert-9"])

    def test_queue_bound_drops_the_oldest_with_one_line(self) -> None:
        events = capture_all_logs(self)
        for n in range(7):  # one in flight, three waiting, three dropped
            self.delivery.put(message(n))
        self.assertEqual(self.delivery.dropped, 3)
        self.assertEqual(self.delivery.queued, 4)
        full = [e for e in events if "dropping the oldest" in e.get("log_format", "")]
        self.assertEqual(len(full), 1, rendered(events))
        self.sender.answer(Verdict.SENT)
        self.assertEqual(self.sender.sent_alerts(), ["alert-0", "alert-4"])
        self.delivery.put(message(7))
        self.delivery.put(message(8))  # full again: the same episode
        self.assertEqual(self.delivery.dropped, 4)
        self.sender.answer(Verdict.SENT)  # two waiting of three: not over yet
        self.assertEqual([e for e in events if "room again" in e.get("log_format", "")], [])
        self.sender.answer(Verdict.SENT)  # one waiting: half empty
        full = [e for e in events if "dropping the oldest" in e.get("log_format", "")]
        ended = [e for e in events if "room again" in e.get("log_format", "")]
        self.assertEqual((len(full), [e["dropped"] for e in ended]), (1, [4]))

    def test_backoff_schedule(self) -> None:
        self.delivery.put(message(0))
        waits = []
        for _ in range(5):
            self.sender.answer(Verdict.RETRY, "HTTP 503")
            self.assertTrue(self.delivery.retrying)
            (wait,) = self.delays()
            waits.append(wait)
            self.clock.advance(wait)
        self.assertEqual(waits, [5.0, 10.0, 20.0, 40.0, 80.0])
        self.assertEqual(len(self.sender.attempts), 6)
        self.sender.answer(Verdict.SENT)
        self.assertEqual((self.delivery.sent, self.delivery.failed), (1, 5))
        self.assertFalse(self.delivery.retrying)

    def test_retry_after_is_honoured(self) -> None:
        self.delivery.put(message(0))
        self.sender.answer(Verdict.RETRY, "HTTP 429", retry_after=120.0)
        self.assertEqual(self.delays(), [120.0])

    def test_jitter_keeps_half_to_all_of_the_delay(self) -> None:
        delivery = Delivery(
            "j",
            self.sender,
            self.clock,
            deadline=60.0,
            scrub=str,
            backoff=Backoff(5.0, 600.0, random=lambda: 0.0),
        )
        delivery.start()
        delivery.put(message(0))
        self.sender.answer(Verdict.RETRY, "refused")
        self.assertEqual(self.delays(), [2.5])

    def test_retries_for_an_hour_then_drops(self) -> None:
        events = capture_all_logs(self)
        self.delivery.put(message(0))
        self.delivery.put(message(1))
        while self.delivery.dropped == 0:
            self.sender.answer(Verdict.RETRY, "connection refused")
            if self.delivery.retrying:
                (wait,) = self.delays()
                self.clock.advance(wait)
        self.assertLessEqual(self.clock.seconds(), 3600.0)
        self.assertGreater(self.clock.seconds(), 3600.0 - 600.0)
        # The next message is tried at once.
        self.assertEqual(self.sender.sent_alerts()[-1], "alert-1")
        lines = [e for e in events if "cannot deliver" in e.get("log_format", "")]
        self.assertEqual(len(lines), 1, rendered(events))
        self.assertEqual(lines[0]["action"], "will retry")

    def test_refused_for_good_drops_at_once(self) -> None:
        events = capture_all_logs(self)
        self.delivery.put(message(0))
        self.delivery.put(message(1))
        self.sender.answer(Verdict.DROP, "HTTP 404: not found")
        self.assertEqual((self.delivery.dropped, self.delivery.failed), (1, 1))
        self.assertFalse(self.delivery.retrying)
        self.assertEqual(self.sender.sent_alerts(), ["alert-0", "alert-1"])
        self.assertEqual(self.delivery.last_error, "HTTP 404: not found")
        (line,) = [e for e in events if "cannot deliver" in e.get("log_format", "")]
        self.assertIn("dropped", str(line["action"]))

    def test_failures_logged_once_and_recovery_once(self) -> None:
        events = capture_all_logs(self)
        self.delivery.put(message(0))
        for _ in range(3):
            self.sender.answer(Verdict.RETRY, "HTTP 502")
            self.clock.advance(self.delays()[0])
        self.sender.answer(Verdict.SENT)
        failing = [e for e in events if "cannot deliver" in e.get("log_format", "")]
        again = [e for e in events if "delivering again" in e.get("log_format", "")]
        self.assertEqual(len(failing), 1)
        self.assertEqual([e["failures"] for e in again], [3])

    def test_an_attempt_without_answer_is_given_up_at_the_deadline(self) -> None:
        self.delivery.put(message(0))
        self.clock.advance(60.0)
        self.assertTrue(self.delivery.retrying)
        self.assertEqual(self.delivery.last_error, "no answer within 60 s")
        self.assertTrue(self.sender.attempts[0][1].called, "the attempt was cancelled")

    def test_secrets_are_scrubbed(self) -> None:
        events = capture_all_logs(self)
        self.delivery.put(message(0))
        self.sender.answer(Verdict.RETRY, "HTTP 500: no topic topic-secret here")
        self.assertEqual(self.delivery.last_error, "HTTP 500: no topic *** here")
        self.assertNotIn("topic-secret", rendered(events))
        self.assertNotIn("topic-secret", repr(self.delivery.state()))

    def test_state(self) -> None:
        self.delivery.put(message(0))
        self.sender.answer(Verdict.RETRY, "HTTP 503")
        self.assertEqual(
            self.delivery.state(),
            {
                "kind": "webhook",
                "target": "https://hooks.example/***",
                "queued": 1,
                "sent": 0,
                "failed": 1,
                "dropped": 0,
                "last_error": "HTTP 503",
                "retrying": True,
            },
        )

    def test_stop_cancels_the_attempt_and_the_timer(self) -> None:
        self.delivery.put(message(0))
        self.delivery.put(message(1))
        self.sender.answer(Verdict.RETRY, "HTTP 503")
        self.successResultOf(self.delivery.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(self.sender.closed)
        other = Delivery("o", FakeSender(), self.clock, deadline=60.0, scrub=str)
        other.start()
        other.put(message(0))
        self.successResultOf(other.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_sender_that_raises_drops_the_message(self) -> None:
        def broken(message: Message) -> Deferred[Outcome]:
            raise ValueError("header value with a newline")

        self.sender.send = broken  # type: ignore[method-assign]
        self.delivery.put(message(0))
        self.assertEqual((self.delivery.dropped, self.delivery.queued), (1, 0))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_send_once_waits_at_most_twenty_seconds(self) -> None:
        d = self.delivery.send_once(message(0))
        self.clock.advance(20.0)
        self.assertEqual(self.successResultOf(d), "no answer within 20 s")
        self.assertFalse(self.delivery.retrying)

    def test_stop_cancels_a_test_message(self) -> None:
        d = self.delivery.send_once(message(0))
        self.successResultOf(self.delivery.stop())
        self.assertEqual(self.successResultOf(d), "stopped")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_send_once(self) -> None:
        d = self.delivery.send_once(message(0))
        self.sender.answer(Verdict.DROP, "HTTP 401: unauthorized topic-secret")
        self.assertEqual(self.successResultOf(d), "HTTP 401: unauthorized ***")
        d = self.delivery.send_once(message(0))
        self.sender.answer(Verdict.SENT)
        self.assertEqual(self.successResultOf(d), "sent")
        self.assertEqual((self.delivery.sent, self.delivery.failed), (0, 0))
