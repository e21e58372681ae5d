"""Tests for L{pistatsd.sampler}: everything on a L{Clock}, nothing sleeps."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from pistatsd import sampler as sampler_module
from pistatsd.sampler import Sampler, TooManyMeasurements
from pistatsd.sysinfo import Snapshot, SystemCollector
from tests.unit.test_sysinfo import FakePsutil, capture_logs, cpu, empty_sysfs


class FlakyCollector(SystemCollector):
    """A collector whose C{collect} raises while C{broken} is set."""

    broken = False

    def collect(self, when: float, timestamp: float | None = None) -> Snapshot:
        if self.broken:
            raise ZeroDivisionError("broken collector")
        return super().collect(when, timestamp)


#: Sensors enough to make a snapshot the size of a whole machine's (~3 KB).
BUSY_SENSORS = {
    f"sensor_{i}": {"value": 20.0 + i / 8, "unit": "C", "error": None} for i in range(40)
}


class SamplerTestCase(SynchronousTestCase):
    """A sampler on a Clock and a fake psutil, stopped at the end of each test."""

    def make(self, start: bool = True, **kw: Any) -> Sampler:
        """Build (and by default start) a sampler; the fake psutil is C{self.ps}."""
        self.clock = Clock()
        self.ps = FakePsutil()
        self.collector = FlakyCollector(psutil=self.ps, sys_root=empty_sysfs(self), hostname="pi")
        kw.setdefault("wall", self.clock.seconds)
        sampler = Sampler(self.clock, collector=self.collector, **kw)
        if start:
            sampler.startService()
            self.addCleanup(self.stop, sampler)
        return sampler

    def stop(self, sampler: Sampler) -> None:
        if sampler.running:
            sampler.stopService()

    def timestamps(self, snapshots: list[Snapshot]) -> list[float]:
        return [s["timestamp"] for s in snapshots]


class LifecycleTests(SamplerTestCase):
    """Starting, looping and stopping."""

    def test_badInterval(self) -> None:
        """A zero interval would spin: refused at construction."""
        self.assertRaises(ValueError, Sampler, Clock(), interval=0)

    def test_noSampleBeforeStart(self) -> None:
        """Before the first sample there is nothing to serve, and it says so."""
        sampler = self.make(start=False)
        self.assertRaises(RuntimeError, lambda: sampler.latest)
        self.assertRaises(RuntimeError, lambda: sampler.latest_json)
        self.assertEqual(sampler.history(), [])

    def test_warmUpSampleAtStart(self) -> None:
        """startService samples synchronously; CPU is warming up (null)."""
        sampler = self.make(interval=1.0)
        self.assertEqual(sampler.latest["timestamp"], 0.0)
        self.assertIsNone(sampler.latest["cpu"]["percent"])
        self.assertEqual(sampler.latest["hostname"], "pi")
        self.assertEqual(len(sampler.history()), 1)
        self.clock.advance(0.99)
        self.assertEqual(len(sampler.history()), 1)

    def test_samplesAtInterval(self) -> None:
        """One sample per interval; the second one has a real CPU percent."""
        sampler = self.make(interval=0.5)
        self.ps.total = cpu(user=130, system=60, idle=850, iowait=60)
        self.clock.pump([0.5] * 4)
        self.assertEqual(self.timestamps(sampler.history()), [0.0, 0.5, 1.0, 1.5, 2.0])
        second = sampler.history()[1]["cpu"]
        self.assertEqual(second["percent"], 40.0)
        self.assertEqual(second["interval"], 0.5)
        self.assertEqual(sampler.latest["cpu"]["percent"], 0.0)

    def test_stopService(self) -> None:
        """Stopped: no more samples, no timer left behind, latest still served."""
        sampler = self.make(interval=1.0)
        self.clock.pump([1.0] * 2)
        self.assertIsNone(sampler.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.pump([1.0] * 3)
        self.assertEqual(len(sampler.history()), 3)
        self.assertEqual(sampler.latest["timestamp"], 2.0)

    def test_failingCollectorDoesNotKillTheLoop(self) -> None:
        """Failures are logged once per episode; the loop and last snapshot survive."""
        events = capture_logs(self, "pistatsd.sampler")
        sampler = self.make(interval=1.0)
        self.collector.broken = True
        self.clock.pump([1.0] * 3)
        self.assertEqual(sampler.latest["timestamp"], 0.0)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.collector.broken = False
        self.clock.pump([1.0])
        self.assertEqual(sampler.latest["timestamp"], 4.0)
        self.assertEqual(self.timestamps(sampler.history()), [0.0, 4.0])
        self.assertEqual(
            [(e["log_level"], e.get("n")) for e in events],
            [(LogLevel.critical, None), (LogLevel.info, 3)],
        )
        self.collector.broken = True
        self.clock.pump([1.0])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class HistoryTests(SamplerTestCase):
    """The bounded ring buffer."""

    def test_boundedToHistorySeconds(self) -> None:
        """history_seconds / interval snapshots at most, the newest kept."""
        sampler = self.make(interval=1.0, history_seconds=3.0)
        self.clock.pump([1.0] * 10)
        self.assertEqual(self.timestamps(sampler.history()), [8.0, 9.0, 10.0])

    def test_boundRoundsUp(self) -> None:
        """2.5 s of history at 1 s needs 3 slots, not 2."""
        sampler = self.make(interval=1.0, history_seconds=2.5)
        self.clock.pump([1.0] * 10)
        self.assertEqual(len(sampler.history()), 3)

    def test_historySeconds(self) -> None:
        """Only snapshots at most C{seconds} old, oldest first."""
        sampler = self.make(interval=1.0)
        self.clock.pump([1.0] * 10)
        self.assertEqual(len(sampler.history()), 11)
        self.assertEqual(self.timestamps(sampler.history(2.5)), [8.0, 9.0, 10.0])
        self.assertEqual(self.timestamps(sampler.history(2)), [8.0, 9.0, 10.0])
        self.assertEqual(self.timestamps(sampler.history(0)), [10.0])
        self.assertEqual(len(sampler.history(1000)), 11)

    def test_ringHoldsCompressedSnapshots(self) -> None:
        """The ring's memory is a fraction of the JSON it gives back, byte for byte."""
        sampler = self.make(interval=1.0, sections=(lambda: {"sensors": BUSY_SENSORS},))
        self.clock.pump([1.0] * 20)
        given = sampler.history_encoded()
        self.assertEqual(given[-1], sampler.latest_json)
        self.assertEqual([json.loads(g) for g in given], sampler.history())
        kept = sum(len(packed) for _, packed in sampler._history)
        self.assertLess(kept, sum(map(len, given)) / 2)

    def test_historyIsACopy(self) -> None:
        """Callers get their own list; the buffer is not theirs to change."""
        sampler = self.make()
        sampler.history().clear()
        self.assertEqual(len(sampler.history()), 1)


class LatestJsonTests(SamplerTestCase):
    """The encoded snapshot /stats serves."""

    def test_equalsLatest(self) -> None:
        """The bytes decode to the latest snapshot."""
        sampler = self.make()
        self.clock.pump([1.0] * 2)
        self.assertIsInstance(sampler.latest_json, bytes)
        self.assertEqual(json.loads(sampler.latest_json), sampler.latest)

    def test_encodedOncePerSample(self) -> None:
        """Reading latest_json does not encode; each new sample encodes once."""
        encodings: list[Any] = []

        def dumps(obj: Any, **kw: Any) -> str:
            encodings.append(obj)
            return json.dumps(obj, **kw)

        self.patch(sampler_module, "json", type("CountingJson", (), {"dumps": staticmethod(dumps)}))
        sampler = self.make()
        first = sampler.latest_json
        self.assertIs(sampler.latest_json, first)
        self.assertIs(sampler.latest_json, first)
        self.assertEqual(len(encodings), 1)
        self.clock.advance(1.0)
        self.assertEqual(len(encodings), 2)
        self.assertNotEqual(sampler.latest_json, first)
        self.assertEqual(json.loads(sampler.latest_json)["timestamp"], 1.0)


class MeasureCpuTests(SamplerTestCase):
    """On-demand CPU measurements over S seconds of reactor time."""

    def test_firesAfterExactlySeconds(self) -> None:
        """Fires at S, not before, with the window's CPU and interval == S."""
        sampler = self.make(interval=1.0)
        self.clock.advance(0.25)
        measured = sampler.measure_cpu(2.5)
        self.ps.total = cpu(user=130, system=60, idle=850, iowait=60)
        self.ps.per_cpu = [cpu(user=60, idle=460), cpu(user=90, system=50, idle=360, iowait=50)]
        self.clock.pump([0.5] * 4 + [0.49])
        self.assertNoResult(measured)
        self.clock.advance(0.01)
        result = self.successResultOf(measured)
        self.assertEqual(
            result["cpu"],
            {
                "percent": 40.0,
                "per_cpu": [50.0, 80.0],
                "count": 2,
                "load": [0.1, 0.2, 0.3],
                "interval": 2.5,
                "freq_mhz": None,
            },
        )
        self.assertEqual(result["timestamp"], 2.75)
        self.assertEqual(sampler.pending_measurements, 0)

    def test_copyOfLatest(self) -> None:
        """The rest of the result is the latest snapshot; latest itself is untouched."""
        sampler = self.make(interval=10.0)
        latest = sampler.latest
        latest_cpu = latest["cpu"]
        result = self.successResultOf(self.run_measurement(sampler, 1.0))
        self.assertIsNot(result, latest)
        self.assertIs(latest["cpu"], latest_cpu)
        self.assertEqual(latest["timestamp"], 0.0)
        self.assertEqual(
            {k: v for k, v in result.items() if k not in ("cpu", "timestamp")},
            {k: v for k, v in latest.items() if k not in ("cpu", "timestamp")},
        )

    def run_measurement(self, sampler: Sampler, seconds: float) -> Any:
        measured = sampler.measure_cpu(seconds)
        self.clock.advance(seconds)
        return measured

    def test_thousandConcurrent(self) -> None:
        """1000 measurements all fire after one advance, sharing two CPU readings."""
        sampler = self.make(interval=60.0)
        reads_before = self.ps.calls["cpu_times"]
        measurements = [sampler.measure_cpu(1.0) for _ in range(1000)]
        self.assertEqual(sampler.pending_measurements, 1000)
        self.ps.total = cpu(user=200, system=50, idle=800, iowait=50)
        self.clock.advance(1.0)
        results = [self.successResultOf(m) for m in measurements]
        self.assertEqual({r["cpu"]["percent"] for r in results}, {100.0})
        self.assertEqual({r["cpu"]["interval"] for r in results}, {1.0})
        self.assertEqual(sampler.pending_measurements, 0)
        self.assertEqual(self.ps.calls["cpu_times"] - reads_before, 4)

    def test_shortWindowTakesItsOwnSecondReading(self) -> None:
        """A window shorter than the sharing window still has two distinct readings."""
        sampler = self.make(interval=60.0)
        measured = sampler.measure_cpu(0.001)
        self.ps.total = cpu(user=200, system=50, idle=800, iowait=50)
        self.clock.advance(0.001)
        self.assertEqual(self.successResultOf(measured)["cpu"]["percent"], 100.0)

    def test_tooMany(self) -> None:
        """Beyond max_pending: TooManyMeasurements, one warning per episode."""
        events = capture_logs(self, "pistatsd.sampler")
        sampler = self.make(max_pending=3, interval=60.0)
        measurements = [sampler.measure_cpu(1.0) for _ in range(3)]
        self.assertRaises(TooManyMeasurements, sampler.measure_cpu, 1.0)
        self.assertRaises(TooManyMeasurements, sampler.measure_cpu, 1.0)
        self.assertEqual(sampler.pending_measurements, 3)
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn])

        self.clock.advance(1.0)
        for m in measurements:
            self.successResultOf(m)
        self.assertEqual(sampler.pending_measurements, 0)
        again = sampler.measure_cpu(1.0)
        self.assertEqual(sampler.pending_measurements, 1)
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn, LogLevel.info])
        self.assertEqual(events[-1]["n"], 2)
        self.clock.advance(1.0)
        self.successResultOf(again)

    def test_cancelFreesSlotAndTimer(self) -> None:
        """Cancelling (client gone) errbacks, drops the DelayedCall and frees the slot."""
        sampler = self.make(max_pending=1, interval=60.0)
        loop_calls = list(self.clock.getDelayedCalls())
        measured = sampler.measure_cpu(5.0)
        (timer,) = [c for c in self.clock.getDelayedCalls() if c not in loop_calls]
        self.assertRaises(TooManyMeasurements, sampler.measure_cpu, 1.0)

        measured.cancel()
        self.failureResultOf(measured, CancelledError)
        self.assertEqual(sampler.pending_measurements, 0)
        self.assertFalse(timer.active())
        self.assertEqual(self.clock.getDelayedCalls(), loop_calls)
        self.successResultOf(self.run_measurement(sampler, 1.0))

    def test_cancelAfterFiringIsHarmless(self) -> None:
        """A client that goes away after its answer changes nothing."""
        sampler = self.make(interval=60.0)
        measured = self.run_measurement(sampler, 1.0)
        measured.cancel()
        self.assertEqual(self.successResultOf(measured)["cpu"]["interval"], 1.0)
        self.assertEqual(sampler.pending_measurements, 0)

    def test_stopServiceCancelsPending(self) -> None:
        """Shutdown never waits for measurements: they errback at once."""
        sampler = self.make(interval=1.0)
        measurements = [sampler.measure_cpu(10.0) for _ in range(2)]
        sampler.stopService()
        for m in measurements:
            self.failureResultOf(m, CancelledError)
        self.assertEqual(sampler.pending_measurements, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_readingFailureErrbacks(self) -> None:
        """If the second reading fails, the Deferred fails instead of hanging."""
        sampler = self.make(interval=60.0)
        measured = sampler.measure_cpu(1.0)
        self.ps.errors["cpu_times"] = OSError("gone")
        self.clock.advance(1.0)
        self.failureResultOf(measured, OSError)
        self.assertEqual(sampler.pending_measurements, 0)


def test_history_encoded_matches_history() -> None:
    """The served bytes and the decoded history are the same snapshots."""
    import json

    from twisted.internet.task import Clock

    from pistatsd.sampler import Sampler

    clock = Clock()
    sampler = Sampler(clock, interval=1.0, history_seconds=10)
    sampler.startService()
    clock.pump([1.0] * 15)
    encoded = sampler.history_encoded(5)
    assert [json.loads(e) for e in encoded] == sampler.history(5)
    assert len(sampler.history()) == 10
    sampler.stopService()


def test_history_after_gives_what_is_newer_with_its_clock_time() -> None:
    """The broadcast's hello asks only for what it has not slimmed yet."""
    clock = Clock()
    sampler = Sampler(clock, interval=1.0, history_seconds=10)
    sampler.startService()
    clock.pump([1.0] * 15)
    every = sampler.history_after(float("-inf"))
    assert [json.loads(e) for _, e in every] == sampler.history()
    assert [when for when, _ in every] == [float(t) for t in range(5, 16)][-10:]
    assert sampler.history_after(13.0) == every[-2:]
    assert sampler.history_after(15.0) == []
    sampler.stopService()


class LazyHistoryTests(SamplerTestCase):
    def test_chosen_at_the_call_decompressed_when_reached(self) -> None:
        sampler = self.make(interval=1.0, history_seconds=10)
        self.clock.pump([1.0] * 15)
        expected = sampler.history_encoded(5)
        decompressed: list[bytes] = []
        decompress = sampler_module.zlib.decompress

        def counting(packed: bytes) -> bytes:
            decompressed.append(packed)
            return decompress(packed)

        self.patch(sampler_module.zlib, "decompress", counting)
        lazy = sampler.iter_history_encoded(5)
        self.clock.pump([1.0] * 8)  # new samples meanwhile, the old ones leave the ring
        self.assertEqual(decompressed, [], "nothing decompressed before it is reached")
        self.assertEqual(next(lazy), expected[0])
        self.assertEqual(len(decompressed), 1)
        self.assertEqual([expected[0], *lazy], expected)


class ObserverTests(SamplerTestCase):
    """Observers (the history store) are told of each new snapshot once, in order."""

    def test_each_new_snapshot_once(self) -> None:
        recorded: list[object] = []
        sampler = self.make(observers=(lambda snap: recorded.append(snap["timestamp"]),))
        self.clock.pump([1.0] * 2)
        self.assertEqual(recorded, [0.0, 1.0, 2.0])
        sampler.stopService()
        self.clock.pump([1.0] * 2)
        self.assertEqual(recorded, [0.0, 1.0, 2.0])

    def test_a_failing_observer_is_logged_once_and_the_others_still_told(self) -> None:
        recorded: list[object] = []

        def broken(snap: Snapshot) -> None:
            raise ZeroDivisionError("broken observer")

        self.make(observers=(broken, lambda snap: recorded.append(snap["timestamp"])))
        self.clock.pump([1.0] * 3)
        self.assertEqual(recorded, [0.0, 1.0, 2.0, 3.0])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
