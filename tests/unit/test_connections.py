"""The connection counter the site and the WebSocket hub share."""

from __future__ import annotations

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.web.connections import ConnectionCounter


class ConnectionCounterTests(SynchronousTestCase):
    def test_both_kinds_count_against_one_limit(self) -> None:
        counter = ConnectionCounter(2)
        self.assertTrue(counter.admit())
        counter.opened("http")
        counter.opened("websocket")
        self.assertEqual(
            (counter.count, counter.open("http"), counter.open("websocket")), (2, 1, 1)
        )
        self.assertFalse(counter.admit())
        self.assertEqual(counter.refused, 1)

    def test_an_upgrade_keeps_the_total(self) -> None:
        counter = ConnectionCounter(1)
        counter.opened("http")
        counter.opened("websocket")  # the hub counts it...
        counter.closed("http")  # ...then the site lets it go
        self.assertEqual((counter.count, counter.open("websocket")), (1, 1))
        self.assertFalse(counter.admit())

    def test_the_cap_is_one_episode(self) -> None:
        counter = ConnectionCounter(1)
        counter.opened("http")
        with capturedLogs() as events:
            for _ in range(5):
                self.assertFalse(counter.admit())
            counter.closed("http")
            counter.opened("http")
            counter.closed("http")
        formats = [e["log_format"] for e in events]
        self.assertEqual(len(formats), 2, formats)
        self.assertIn("reached", formats[0])
        self.assertEqual(events[0]["max_connections"], 1)
        self.assertEqual(events[1]["count"], 5)
