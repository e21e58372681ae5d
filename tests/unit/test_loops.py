"""Periodic work: a failing iteration is logged and the next one runs on time."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.loops import Repeating, guarded


class RepeatingTests(SynchronousTestCase):
    def test_a_failing_iteration_does_not_stop_the_loop(self) -> None:
        clock = Clock()
        calls: list[float] = []

        def work() -> None:
            calls.append(clock.seconds())
            if len(calls) == 2:
                raise RuntimeError("boom")

        loop = Repeating(clock, work, "test work")
        with capturedLogs() as events:
            loop.start(1.0, now=False)
            self.assertEqual(calls, [])
            clock.pump([1.0] * 4)
        self.assertEqual(calls, [1.0, 2.0, 3.0, 4.0])
        self.assertTrue(loop.running)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        [event] = events
        self.assertEqual(event["what"], "test work")
        loop.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_guarded_never_raises(self) -> None:
        def broken() -> None:
            raise ValueError("x")

        with capturedLogs():
            guarded(broken, "broken")()
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
