"""The broadcast's fan-out in slices: each slice in its own reactor turn, stamped when sent."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.ws.broadcast import SLICE, Broadcaster
from tests.unit.test_wall_clock import FakeClient
from tests.unit.test_ws_memory import FakeSampler


class SlicedFanOutTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.stamp = 5000.0
        self.broadcaster = Broadcaster(
            FakeSampler(self.clock),  # type: ignore[arg-type]
            self.clock,
            1.0,
            wall=lambda: self.stamp,
        )
        self.clients = [FakeClient() for _ in range(2 * SLICE + SLICE // 2)]
        for client in self.clients:
            self.broadcaster.join(client)  # type: ignore[arg-type]
            client.messages.clear()  # the hello

    def turn(self) -> None:
        """One reactor turn: run the calls due now, not the ones they schedule.

        (C{Clock.advance(0)} would run a chain of zero-delay calls at once.)
        """
        due = [c for c in self.clock.getDelayedCalls() if c.getTime() <= self.clock.seconds()]
        for call in due:
            self.clock.calls.remove(call)
            call.func(*call.args, **call.kw)

    def stats_counts(self) -> list[int]:
        return [sum(m["type"] == "stats" for m in c.messages) for c in self.clients]

    def test_one_slice_per_reactor_turn(self) -> None:
        self.broadcaster.tick()  # the first slice only
        self.assertEqual(sum(self.stats_counts()), SLICE)
        self.stamp += 0.004
        self.turn()  # the next turn
        self.assertEqual(sum(self.stats_counts()), 2 * SLICE)
        self.turn()
        self.assertEqual(self.stats_counts(), [1] * len(self.clients))
        sent = [c.messages[0]["sent"] for c in self.clients]
        self.assertEqual(sent[0], 5000.0)
        self.assertEqual(sent[-1], 5000.004)  # each slice says when it went out

    def test_a_client_gone_mid_tick_gets_nothing(self) -> None:
        self.broadcaster.tick()
        last = self.clients[-1]
        self.broadcaster.leave(last)  # type: ignore[arg-type]
        self.turn()
        self.turn()
        self.assertEqual(last.messages, [])
        self.assertEqual(sum(self.stats_counts()), len(self.clients) - 1)

    def test_a_new_tick_replaces_unsent_slices(self) -> None:
        self.broadcaster.tick()  # tick 1: first slice sent, the rest waiting
        self.broadcaster.tick()  # tick 2 before the reactor turned
        self.turn()
        self.turn()
        counts = self.stats_counts()
        self.assertEqual(counts[:SLICE], [2] * SLICE)
        self.assertEqual(counts[SLICE:], [1] * (len(self.clients) - SLICE))

    def test_the_last_client_leaving_cancels_the_rest(self) -> None:
        self.broadcaster.tick()
        for client in self.clients:
            self.broadcaster.leave(client)  # type: ignore[arg-type]
        self.assertFalse(self.broadcaster.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])
