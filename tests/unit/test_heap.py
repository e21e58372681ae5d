"""Start-up's objects are frozen out of the collector's passes once the daemon runs.

A stand-in collector: freezing the test process's own heap would keep its
garbage cycles for the rest of the run.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.compose import _Ready
from pistatsd.config import Config
from pistatsd.heap import freeze_startup_heap
from pistatsd.status import DaemonStatus


class FakeCollector:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.frozen = 0

    def collect(self) -> int:
        self.calls.append("collect")
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")
        self.frozen = 58966

    def get_freeze_count(self) -> int:
        return self.frozen


class FreezeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_collects_first_then_freezes_what_is_left(self) -> None:
        collector = FakeCollector()
        self.assertEqual(freeze_startup_heap(collector), 58966)
        self.assertEqual(collector.calls, ["collect", "freeze"])

    def test_says_how_many_and_what_a_pass_cost(self) -> None:
        freeze_startup_heap(FakeCollector())
        [event] = [e for e in self.events if e.get("log_namespace") == "pistatsd.heap"]
        self.assertEqual(event["objects"], 58966)
        self.assertGreaterEqual(event["ms"], 0)
        self.assertIn("start-up heap frozen", event["log_format"])


class _Started:
    """The one part of the daemon's status that _Ready touches."""

    def __init__(self, order: list[str]) -> None:
        self.order = order

    def mark_started(self) -> None:
        self.order.append("started")


class ReadyTests(SynchronousTestCase):
    def test_the_heap_is_frozen_and_start_up_over_once_the_reactor_runs_before_ready_is_said(
        self,
    ) -> None:
        order: list[str] = []

        def said(event: dict[str, Any]) -> None:
            if "ready: listening" in event.get("log_format", ""):
                order.append("ready")

        globalLogPublisher.addObserver(said)
        self.addCleanup(globalLogPublisher.removeObserver, said)
        reactor = MemoryReactorClock()
        status = cast(DaemonStatus, _Started(order))
        config = Config(www=".", state_dir=".")
        ready = _Ready(
            status,
            config,
            reactor,
            freeze=lambda: order.append("freeze"),
            started=lambda: order.append("start-up over"),
        )
        ready.startService()
        self.assertEqual(order, ["started"], "nothing frozen before the reactor runs")
        reactor.run()
        self.assertEqual(order, ["started", "freeze", "start-up over", "ready"])
