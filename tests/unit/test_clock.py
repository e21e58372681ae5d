"""L{pistatsd.clock}: a real reactor's timers on a monotonic clock; fakes left alone.

A real reactor class (L{ReactorBase}, without a waker: it never runs here) is
driven by hand with C{runUntilCurrent}.  Its wall clock is Twisted's default,
C{ReactorBase.seconds}, replaced for the test by a fake that can be stepped;
the monotonic clock is a L{Clock}'s.
"""

from __future__ import annotations

import time

from twisted.internet.base import ReactorBase
from twisted.internet.task import Clock, LoopingCall
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.clock import use_monotonic_clock
from pistatsd.config import build_config
from pistatsd.tap import makeService

EPOCH = 1_700_000_000.0
HOUR = 3600.0
DAY = 86400.0


class IdleReactor(ReactorBase):
    """A real reactor's timer logic, without the file descriptors of a waker."""

    def installWaker(self) -> None:
        pass


class ClockTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.wall = [EPOCH]
        self.patch(ReactorBase, "seconds", staticmethod(lambda: self.wall[0]))
        self.monotonic = Clock()
        self.monotonic.advance(500.25)
        self.reactor = IdleReactor()

    def advance(self, seconds: float) -> None:
        """Real time passes: both clocks move, then the reactor runs what is due."""
        self.wall[0] += seconds
        self.monotonic.advance(seconds)
        self.reactor.runUntilCurrent()

    def step(self, seconds: float) -> None:
        """The wall clock is set (C{date -s}, NTP): only it moves."""
        self.wall[0] += seconds


class MonotonicTests(ClockTestCase):
    def test_fakes_are_left_alone(self) -> None:
        for fake in (Clock(), MemoryReactorClock()):
            seconds = fake.seconds
            self.assertFalse(use_monotonic_clock(fake))
            self.assertEqual(fake.seconds, seconds)

    def test_real_reactor_switched_once(self) -> None:
        self.assertTrue(use_monotonic_clock(self.reactor, self.monotonic.seconds))
        self.assertEqual(self.reactor.seconds(), 500.25)
        self.assertFalse(use_monotonic_clock(self.reactor, time.monotonic), "already done")
        self.assertEqual(self.reactor.seconds(), 500.25)

    def test_default_is_time_monotonic(self) -> None:
        use_monotonic_clock(self.reactor)
        self.assertIs(self.reactor.seconds, time.monotonic)

    def test_a_step_back_does_not_stop_timers(self) -> None:
        use_monotonic_clock(self.reactor, self.monotonic.seconds)
        fired: list[float] = []
        loop = LoopingCall(lambda: fired.append(self.wall[0]))
        loop.clock = self.reactor
        loop.start(1.0, now=False)
        self.addCleanup(loop.stop)
        self.advance(1.0)
        self.step(-HOUR)
        for _ in range(3):
            self.advance(1.0)
        self.assertEqual(fired, [EPOCH + 1, EPOCH + 2 - HOUR, EPOCH + 3 - HOUR, EPOCH + 4 - HOUR])

    def test_a_step_forward_does_not_burst(self) -> None:
        use_monotonic_clock(self.reactor, self.monotonic.seconds)
        counts: list[int] = []
        loop = LoopingCall.withCount(counts.append)
        loop.clock = self.reactor
        loop.start(1.0, now=False)
        self.addCleanup(loop.stop)
        once: list[str] = []
        self.reactor.callLater(10.0, once.append, "deadline")
        self.advance(1.0)
        self.step(DAY)
        self.advance(0.5)
        self.assertEqual((counts, once), ([1], []), "nothing due yet")
        self.advance(0.5)
        self.assertEqual((counts, once), ([1, 1], []))

    def test_timers_scheduled_before_are_moved_with_the_time_they_had_left(self) -> None:
        fired: list[str] = []
        self.reactor.callLater(5.0, fired.append, "later")
        counts: list[int] = []
        loop = LoopingCall.withCount(counts.append)
        loop.clock = self.reactor
        loop.start(1.0, now=True)
        self.addCleanup(loop.stop)
        self.advance(0.5)
        self.assertEqual(counts, [1])
        use_monotonic_clock(self.reactor, self.monotonic.seconds)
        self.assertEqual(
            sorted(call.getTime() for call in self.reactor.getDelayedCalls()), [501.25, 505.25]
        )
        self.step(-HOUR)
        self.advance(0.5)
        self.assertEqual(counts, [1, 1], "one interval, not a negative or huge count")
        self.assertEqual(
            sorted(call.getTime() for call in self.reactor.getDelayedCalls()),
            [502.25, 505.25],
            "the loop keeps its phase",
        )
        self.advance(1.0)
        self.assertEqual(counts, [1, 1, 1])
        for _ in range(3):
            self.advance(1.0)
        self.assertEqual(fired, ["later"])
        self.assertEqual(counts, [1, 1, 1, 1, 1, 1])


class CompositionRootTests(SynchronousTestCase):
    def config(self):  # type: ignore[no-untyped-def]
        return build_config({"port": ["tcp:0:interface=127.0.0.1"], "heartbeat": "1"})

    def test_make_service_switches_a_real_reactor_before_scheduling(self) -> None:
        reactor = IdleReactor()
        seen: list[object] = []
        schedule = reactor.callLater

        def spy(delay, f, *a, **kw):  # type: ignore[no-untyped-def]
            seen.append(reactor.seconds)
            return schedule(delay, f, *a, **kw)

        reactor.callLater = spy  # type: ignore[method-assign]
        service = makeService(self.config(), reactor)
        self.assertIs(reactor.seconds, time.monotonic)
        self.assertIsNotNone(service.getServiceNamed("sampler"))
        self.assertTrue(all(s is time.monotonic for s in seen), seen)

    def test_make_service_leaves_a_fake_reactor_alone(self) -> None:
        reactor = MemoryReactorClock()
        reactor.advance(EPOCH)
        makeService(self.config(), reactor)
        self.assertEqual(reactor.seconds(), EPOCH)
