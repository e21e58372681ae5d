"""Slices of long answers share the reactor's turns, one per iteration."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.web.turns import Turns


class TurnsTests(SynchronousTestCase):
    def iteration(self, clock: Clock) -> None:
        """What one reactor iteration runs: the calls due when it starts."""
        due = [call for call in clock.getDelayedCalls() if call.getTime() <= clock.seconds()]
        for call in due:
            clock.calls.remove(call)
            call.func(*call.args, **call.kw)

    def test_one_slice_per_iteration_whatever_the_number_waiting(self) -> None:
        clock = Clock()
        turns = Turns(clock)
        ran: list[str] = []
        for name in ("a", "b", "c"):
            turns.next().addCallback(lambda _, name=name: ran.append(name))
        self.assertEqual((ran, len(turns)), ([], 3))  # never synchronously
        self.iteration(clock)
        self.assertEqual(ran, ["a"])
        turns.next().addCallback(lambda _: ran.append("a2"))  # a's next slice queues behind
        self.iteration(clock)
        self.assertEqual(ran, ["a", "b"])
        self.iteration(clock)
        self.iteration(clock)
        self.assertEqual(ran, ["a", "b", "c", "a2"])
        self.assertEqual((len(turns), clock.getDelayedCalls()), (0, []))
