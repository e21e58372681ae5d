"""Tests for L{pistatsd.machine.readings}: file reads, rates, troubles logged once."""

from __future__ import annotations

import os

from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.machine.readings import Troubles, rate, read_int, read_text
from tests.machine_trees import tree, write
from tests.unit.test_sysinfo import capture_logs


class ReadTests(SynchronousTestCase):
    def test_text(self) -> None:
        """Stripped text; missing, a directory or a big file are handled."""
        root = tree(self)
        self.assertEqual(read_text(write(root, "a", " up\n")), "up")
        self.assertIsNone(read_text(os.path.join(root, "missing")))
        self.assertIsNone(read_text(root))  # EISDIR on read
        big = "x" * 200_000
        self.assertEqual(read_text(write(root, "big", big)), big)

    def test_int(self) -> None:
        """Decimal integers, negative ones too; anything else is C{None}."""
        root = tree(self)
        self.assertEqual(read_int(write(root, "a", "-1\n")), -1)
        self.assertIsNone(read_int(write(root, "b", "0x10\n")))
        self.assertIsNone(read_int(os.path.join(root, "missing")))


class RateTests(SynchronousTestCase):
    def test_rate(self) -> None:
        """Per second, one decimal."""
        self.assertEqual(rate(100, 400, 3.0), 100.0)
        self.assertEqual(rate(0, 1, 3.0), 0.3)

    def test_unknown(self) -> None:
        """No previous value, no window, or backwards: C{None}, never negative."""
        self.assertIsNone(rate(None, 5, 1.0))
        self.assertIsNone(rate(5, 5, None))
        self.assertIsNone(rate(5, 6, 0.0))
        self.assertIsNone(rate(5, 6, -1.0))
        self.assertIsNone(rate(2**32 - 10, 5, 1.0))


class TroublesTests(SynchronousTestCase):
    def test_warnOncePerEpisode(self) -> None:
        """One warning when it starts, one info line when it ends, again next time."""
        events = capture_logs(self, "pistatsd.machine.readings")
        troubles = Troubles("net")
        for _ in range(3):
            troubles.warn("dev", "cannot read {path}", path="/x")
        self.assertTrue(troubles.active("dev"))
        troubles.clear("dev")
        troubles.clear("dev")
        troubles.warn("dev", "cannot read {path}", path="/x")
        self.assertEqual(
            [e["log_level"] for e in events], [LogLevel.warn, LogLevel.info, LogLevel.warn]
        )
        self.assertEqual(events[0]["part"], "net")

    def test_noteEndsSilently(self) -> None:
        """An expected absence is noted once; its end is not news."""
        events = capture_logs(self, "pistatsd.machine.readings")
        troubles = Troubles("fans")
        troubles.note("absent", "none here")
        troubles.note("absent", "none here")
        troubles.clear("absent")
        self.assertFalse(troubles.active("absent"))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.info])
